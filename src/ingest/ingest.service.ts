import { Inject, Injectable } from '@nestjs/common';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { IngestConfig } from '../config/config.js';
import { INGEST_CONFIG, INGEST_METRICS } from '../config/tokens.js';
import { CsvSinkProvider } from '../csv/csv-sink.provider.js';
import { DatasetRegistry } from '../datasets/dataset-registry.js';
import type { Dataset } from '../datasets/datasets-file.js';
import { IngestError } from '../http/errors.js';
import { closedFor } from '../http/http-answers.js';
import type { IngestMetrics } from '../metrics/ingest-metrics.js';
import type { ShedCheck, ShedReason } from '../runtime/load-shedder.js';
import { DecoderBudget, parseContentEncoding } from './body-decoder.js';
import { readBody, type BodyLimits, type LineError } from './ingest-body.js';
import { LongLineBudget } from './long-line-budget.js';
import type { RowMeta } from './core/ndjson-csv.js';
import { ShutdownDrain } from './shutdown-drain.js';

export interface IngestOutcome {
  receivedBytes: number;
  valid: number;
  invalid: number;
  errors: LineError[];
}

/** What `admit` decided: the dataset of the request and its normalised Content-Encoding. */
export interface Admission {
  dataset: Dataset;
  encoding: string;
}

/** A dataset's body limits, built once, and whether its rows need the request's meta values. */
interface DatasetPlan {
  limits: BodyLimits;
  meta: boolean;
}

/** What a 503 `overloaded` for load says, by the check that refused it, with its setting. */
function shedMessages(config: IngestConfig): Record<ShedCheck, string> {
  const sampled = [
    config.shedEventLoopDelayMs > 0
      ? `mean delay over SHED_EVENT_LOOP_DELAY_MS (${config.shedEventLoopDelayMs} ms)`
      : '',
    config.shedEventLoopUtilization > 0
      ? `utilization over SHED_EVENT_LOOP_UTILIZATION (${config.shedEventLoopUtilization})`
      : '',
  ].filter(Boolean);
  return {
    in_flight: `the worker has MAX_IN_FLIGHT (${config.maxInFlight}) requests in flight; retry later`,
    event_loop: `the worker's event loop is behind (${sampled.join(', or ')}, in consecutive samples of SHED_SAMPLE_MS, ${config.shedSampleMs} ms); retry later`,
    turn: `the worker has run longer than SHED_EVENT_LOOP_TURN_MS (${config.shedEventLoopTurnMs} ms) on the requests that arrived with this one; retry later`,
  };
}

/**
 * One ingest request: checks what can be refused before the body is read, streams the body
 * through the transform, and commits the request's rows whole.
 */
@Injectable()
export class IngestService {
  readonly datasets: DatasetRegistry;
  private readonly plans = new Map<string, DatasetPlan>();
  /** Why to refuse the next request for load, if at all (see shedWhen). */
  private loadRefusal: () => ShedReason | undefined = () => undefined;
  private readonly shedMessages: Record<ShedCheck, string>;

  constructor(
    @Inject(INGEST_CONFIG) private readonly config: IngestConfig,
    @Inject(INGEST_METRICS) private readonly metrics: IngestMetrics,
    private readonly sink: CsvSinkProvider,
    private readonly drain: ShutdownDrain,
  ) {
    this.datasets = new DatasetRegistry(config.datasets, config.ingestTokens);
    this.shedMessages = shedMessages(config);
    const decoders = {
      maxWindowBytes: config.maxDecoderWindowBytes,
      budget: new DecoderBudget(config.decoderMemoryBytes),
    };
    const longLines = new LongLineBudget(config.longLineMemoryBytes);
    metrics.longLineSource = () => longLines;
    metrics.decoderRefusalSource = () => decoders.budget.refusals;
    for (const d of this.datasets.all) {
      this.plans.set(d.name, {
        limits: {
          columns: d.columns,
          eol: d.eol,
          maxLineBytes: config.maxLineBytes,
          maxBodyBytes: config.maxBodyBytes,
          maxDecodedBytes: config.maxDecodedBytes,
          bodyTimeoutMs: config.bodyTimeoutMs,
          minBodyRate: config.minBodyRate,
          minBodyRateGraceMs: config.minBodyRateGraceMs,
          spillDir: config.csvDir,
          spillThresholdBytes: config.spillThresholdBytes,
          maxQuarantineBytes: config.maxQuarantineBytes,
          decoders,
          longLines,
        },
        meta: d.specs.some((s) => s.meta !== undefined),
      });
    }
  }

  /**
   * Refusals that need no body (SPEC §3): 404 unknown dataset, 401/403, 415, 413 from
   * Content-Length, 503 when overloaded. `datasetName` undefined: the default dataset.
   */
  admit(headers: IncomingHttpHeaders, datasetName: string | undefined): Admission {
    const dataset = this.datasets.find(datasetName);
    if (dataset === undefined) this.datasets.refuseUnknown(datasetName!, headers.authorization);
    this.datasets.authorize(dataset!, headers.authorization);
    const encoding = parseContentEncoding(headers['content-encoding']);
    const length = headers['content-length'];
    if (length !== undefined && Number(length) > this.config.maxBodyBytes) {
      throw new IngestError(
        'body_too_large',
        `the request body (${length} bytes) is larger than MAX_BODY_BYTES (${this.config.maxBodyBytes})`,
      );
    }
    // Checked again here (the gate's `shed` came first): requests gated in one turn may all have
    // passed it before any of them began.
    const full = this.inFlightRefusal();
    if (full !== undefined) throw full;
    return { dataset: dataset!, encoding };
  }

  private inFlightRefusal(): IngestError | undefined {
    return this.drain.inFlight >= this.config.maxInFlight
      ? this.overloaded('in_flight')
      : undefined;
  }

  /** A 503 `overloaded` that says which check refused it, counted by that check in the metrics. */
  private overloaded(reason: ShedCheck): IngestError {
    this.metrics.recordShed(reason);
    return new IngestError('overloaded', this.shedMessages[reason], { retryAfter: 1 });
  }

  /**
   * The load check, made once per ingest request as soon as its head is parsed (the request gate
   * in main.ts), before Fastify and the other checks: a refusal under load must cost as little as
   * possible, since every refused body is still read. Records the refusal's answer in the metrics
   * under its dataset (`datasetName` undefined: the default; unknown: none), with no duration: it
   * is answered as soon as it is seen.
   */
  shed(datasetName: string | undefined): IngestError | undefined {
    let refusal = this.inFlightRefusal();
    if (refusal === undefined) {
      const reason = this.loadRefusal();
      if (reason !== undefined) refusal = this.overloaded(reason);
    }
    if (refusal !== undefined) {
      this.metrics.recordAnswer(refusal.status, 0, this.datasets.find(datasetName)?.name ?? '');
    }
    return refusal;
  }

  /** Load shedding: `refusal` says why to refuse the next request, if at all (main.ts wires it). */
  shedWhen(refusal: () => ShedReason | undefined): void {
    this.loadRefusal = refusal;
  }

  async ingest(
    req: IncomingMessage,
    { dataset, encoding }: Admission,
    requestId: string,
    startedAt: number,
  ): Promise<IngestOutcome> {
    const metrics = this.metrics;
    const plan = this.plans.get(dataset.name)!;
    const done = this.drain.begin();
    try {
      const deadlineMs = this.config.requestTimeoutMs - (performance.now() - startedAt);
      const meta: RowMeta | undefined = plan.meta
        ? {
            requestId,
            receivedAt: new Date(Date.now() - (performance.now() - startedAt)),
            node: this.config.nodeLabel,
          }
        : undefined;
      const body = await readBody(
        req,
        encoding,
        requestId,
        plan.limits,
        deadlineMs,
        meta,
        startedAt,
      );
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
        const written = await this.sink.commit(dataset, body.rows, body.quarantine);
        metrics.recordIngest(
          {
            receivedBytes: body.receivedBytes,
            decodedBytes: body.decodedBytes,
            writtenBytes: written.csvBytes,
            valid: body.valid,
            invalid: body.invalid,
            parseSeconds: body.parseSeconds,
            writeSeconds: written.writeSeconds,
          },
          dataset.name,
        );
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
}
