import { Inject, Injectable } from '@nestjs/common';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import type { IngestConfig } from '../config.js';
import { INGEST_CONFIG, INGEST_METRICS } from '../tokens.js';
import { CsvSinkProvider } from '../csv/csv-sink.provider.js';
import { IngestError } from '../errors.js';
import { closedFor } from '../http-answers.js';
import type { IngestMetrics } from '../metrics/ingest-metrics.js';
import { DecoderBudget, parseContentEncoding } from './body-decoder.js';
import { readBody, type BodyLimits, type LineError } from './ingest-body.js';
import { ShutdownDrain } from './shutdown-drain.js';

export interface IngestOutcome {
  receivedBytes: number;
  valid: number;
  invalid: number;
  errors: LineError[];
}

/**
 * One ingest request: checks what can be refused before the body is read, streams the body
 * through the transform, and commits the request's rows whole.
 */
@Injectable()
export class IngestService {
  private readonly tokens: Buffer[];
  /** The body limits, built once from the configuration. */
  private readonly limits: BodyLimits;

  constructor(
    @Inject(INGEST_CONFIG) private readonly config: IngestConfig,
    @Inject(INGEST_METRICS) private readonly metrics: IngestMetrics,
    private readonly sink: CsvSinkProvider,
    private readonly drain: ShutdownDrain,
  ) {
    this.tokens = config.ingestTokens.map((t) => Buffer.from(t));
    this.limits = {
      columns: config.csvColumns,
      eol: config.csvEol,
      maxLineBytes: config.maxLineBytes,
      maxBodyBytes: config.maxBodyBytes,
      maxDecodedBytes: config.maxDecodedBytes,
      bodyTimeoutMs: config.bodyTimeoutMs,
      spillDir: config.csvDir,
      spillThresholdBytes: config.spillThresholdBytes,
      maxQuarantineBytes: config.maxQuarantineBytes,
      decoders: {
        maxWindowBytes: config.maxDecoderWindowBytes,
        budget: new DecoderBudget(config.decoderMemoryBytes),
      },
    };
  }

  /**
   * Refusals that need no body (SPEC §3): 401, 415, 413 from Content-Length, 503 when overloaded.
   * Returns the normalised Content-Encoding.
   */
  admit(headers: IncomingHttpHeaders): string {
    if (this.tokens.length > 0 && !this.authorized(headers.authorization)) {
      throw new IngestError('unauthorized');
    }
    const encoding = parseContentEncoding(headers['content-encoding']);
    const length = headers['content-length'];
    if (length !== undefined && Number(length) > this.config.maxBodyBytes) {
      throw new IngestError(
        'body_too_large',
        `the request body (${length} bytes) is larger than MAX_BODY_BYTES (${this.config.maxBodyBytes})`,
      );
    }
    if (this.drain.inFlight >= this.config.maxInFlight) {
      throw new IngestError('overloaded', undefined, { retryAfter: 1 });
    }
    return encoding;
  }

  async ingest(
    req: IncomingMessage,
    encoding: string,
    requestId: string,
    startedAt: number,
  ): Promise<IngestOutcome> {
    const metrics = this.metrics;
    const done = this.drain.begin();
    try {
      const deadlineMs = this.config.requestTimeoutMs - (performance.now() - startedAt);
      const body = await readBody(req, encoding, requestId, this.limits, deadlineMs);
      try {
        // Its answer could no longer reach the client (a parse error or an earlier answer
        // closed the connection): a commit now would be written twice by the client's retry.
        if (closedFor(req)) {
          const err = new IngestError(
            'client_aborted',
            'the connection is closing or closed, so the answer could not be delivered; nothing was written',
          );
          err.receivedBytes = body.receivedBytes;
          throw err;
        }
        const written = await this.sink.commit(body.rows, body.quarantine);
        metrics.recordIngest({
          receivedBytes: body.receivedBytes,
          decodedBytes: body.decodedBytes,
          writtenBytes: written.csvBytes,
          valid: body.valid,
          invalid: body.invalid,
          parseSeconds: body.parseSeconds,
          writeSeconds: written.writeSeconds,
        });
      } finally {
        body.rows.dispose();
        body.quarantine.dispose();
      }
      return {
        receivedBytes: body.receivedBytes,
        valid: body.valid,
        invalid: body.invalid,
        errors: body.errors,
      };
    } finally {
      done();
    }
  }

  private authorized(header: string | undefined): boolean {
    if (header === undefined || !/^bearer /i.test(header)) return false;
    const given = Buffer.from(header.slice(7).trim());
    let ok = false;
    for (const token of this.tokens) {
      // Constant time per token, so the answer time does not tell how much of a token matched.
      if (token.length === given.length && timingSafeEqual(token, given)) ok = true;
    }
    return ok;
  }
}
