import { Controller, Inject, Post, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { toIngestError } from '../errors.js';
import { bodyPending, sendError } from '../http-answers.js';
import { INGEST_METRICS } from '../tokens.js';
import type { IngestMetrics } from '../metrics/ingest-metrics.js';
import { IngestService, type IngestOutcome } from './ingest.service.js';

/** The ingest routes (also read by the request gate, for `Expect: 100-continue`). */
export const INGEST_PATHS = ['/', '/ingest'];

/**
 * `POST /` and `POST /ingest`: the raw request stream goes to IngestService (no body parser runs
 * for these routes, see main.ts). The answer is written here, by hand: the success body is a
 * fixed template, which skips Nest's serialization and interceptors on the hot route.
 */
@Controller()
export class IngestController {
  constructor(
    private readonly ingest: IngestService,
    @Inject(INGEST_METRICS) private readonly metrics: IngestMetrics,
  ) {}

  @Post(INGEST_PATHS)
  async post(@Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const startedAt = performance.now();
    const requestId = String(request.id);
    let status: number;
    let outcome: IngestOutcome | undefined;
    let code: string | undefined;
    let receivedBytes: number | undefined;
    try {
      const encoding = this.ingest.admit(request.headers);
      outcome = await this.ingest.ingest(request.raw, encoding, requestId, startedAt);
      status = 200;
      reply
        .code(200)
        .header('content-type', 'application/json; charset=utf-8')
        .header('x-request-id', requestId)
        .send(successBody(outcome, requestId));
    } catch (err) {
      const failure = toIngestError(err);
      status = failure.status;
      code = failure.code;
      receivedBytes = failure.receivedBytes;
      if (status >= 500 && failure.code !== 'overloaded') {
        request.log.error({ err: failure.cause ?? failure }, 'ingest failed');
      }
      sendError(reply, failure, bodyPending(request.raw));
    }
    const seconds = (performance.now() - startedAt) / 1000;
    this.metrics.recordAnswer(status, seconds);
    // One log line per request (SPEC: no logging per row).
    request.log.info(
      {
        status,
        code,
        bytes: outcome?.receivedBytes ?? receivedBytes,
        valid: outcome?.valid,
        invalid: outcome?.invalid,
        ms: Math.round(seconds * 1e4) / 10,
      },
      'ingest',
    );
  }
}

/** `{"result":{"status":"ok","stats":{…},"request_id":…[,"errors":[…]]}}` without a serializer. */
function successBody(o: IngestOutcome, requestId: string): string {
  const errors = o.errors.length > 0 ? `,"errors":${JSON.stringify(o.errors)}` : '';
  return (
    `{"result":{"status":"ok","stats":{"bytes":${o.receivedBytes},"records":{"valid":${o.valid},` +
    `"invalid":${o.invalid},"total":${o.valid + o.invalid}}},"request_id":${JSON.stringify(requestId)}${errors}}}`
  );
}
