import { Controller, Inject, Post, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { toIngestError } from '../http/errors.js';
import { bodyPending, sendError } from '../http/http-answers.js';
import { INGEST_METRICS } from '../config/tokens.js';
import type { IngestMetrics } from '../metrics/ingest-metrics.js';
import { IngestService, type IngestOutcome } from './ingest.service.js';

/** The routes of the default dataset. */
export const DEFAULT_PATHS = ['/', '/ingest'];
const DATASET_PATH = '/ingest/:dataset';
/** Tinybird's Events API path: `?name=<dataset>` (SPEC §3). */
const EVENTS_PATH = '/v0/events';

/**
 * The dataset an ingest route names (`null`: not an ingest route; `undefined`: the default
 * dataset). Also read by the request gate, for `Expect: 100-continue`, before routing.
 */
export function ingestTarget(url: string): { dataset: string | undefined } | null {
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  if (DEFAULT_PATHS.includes(path)) return { dataset: undefined };
  if (path.startsWith('/ingest/') && path.indexOf('/', 8) < 0) {
    return { dataset: safeDecode(path.slice(8)) };
  }
  if (path === EVENTS_PATH) {
    const name = new URLSearchParams(q < 0 ? '' : url.slice(q + 1)).get('name');
    return { dataset: name ?? '' };
  }
  return null;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/**
 * The ingest routes: `POST /` and `POST /ingest` (the default dataset), `POST /ingest/{dataset}`
 * and `POST /v0/events?name={dataset}`. The raw request stream goes to IngestService (no body
 * parser runs, see main.ts). The answer is written here, by hand: the success body is a fixed
 * template, which skips Nest's serialization and interceptors on the hot route.
 */
@Controller()
export class IngestController {
  constructor(
    private readonly ingest: IngestService,
    @Inject(INGEST_METRICS) private readonly metrics: IngestMetrics,
  ) {}

  @Post(DEFAULT_PATHS)
  post(@Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    return this.handle(request, reply, undefined, false);
  }

  @Post(DATASET_PATH)
  postDataset(@Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    return this.handle(request, reply, (request.params as { dataset: string }).dataset, false);
  }

  /** Tinybird's Events API: its SDKs and clients point here unchanged. */
  @Post(EVENTS_PATH)
  events(@Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const name = (request.query as { name?: unknown }).name;
    return this.handle(request, reply, typeof name === 'string' ? name : '', true);
  }

  private async handle(
    request: FastifyRequest,
    reply: FastifyReply,
    datasetName: string | undefined,
    tinybird: boolean,
  ): Promise<void> {
    const startedAt = performance.now();
    const requestId = String(request.id);
    let status: number;
    let outcome: IngestOutcome | undefined;
    let code: string | undefined;
    let receivedBytes: number | undefined;
    let dataset = '';
    try {
      const admission = this.ingest.admit(request.headers, datasetName);
      dataset = admission.dataset.name;
      outcome = await this.ingest.ingest(request.raw, admission, requestId, startedAt);
      status = 200;
      reply
        .code(200)
        .header('content-type', 'application/json; charset=utf-8')
        .header('x-request-id', requestId)
        .send(successBody(outcome, requestId, tinybird));
    } catch (err) {
      const failure = toIngestError(err);
      // A refusal before admission (401, 415, 503 …) still counts for its dataset, if it exists.
      if (dataset === '' && datasetName !== '') {
        dataset = this.ingest.datasets.find(datasetName)?.name ?? '';
      }
      status = failure.status;
      code = failure.code;
      receivedBytes = failure.receivedBytes;
      if (status >= 500 && failure.code !== 'overloaded') {
        request.log.error({ err: failure.cause ?? failure }, 'ingest failed');
      }
      sendError(reply, failure, bodyPending(request.raw), tinybird);
    }
    const seconds = (performance.now() - startedAt) / 1000;
    this.metrics.recordAnswer(status, seconds, dataset);
    // One log line per request (SPEC: no logging per row).
    request.log.info(
      {
        status,
        code,
        dataset: dataset === '' ? undefined : dataset,
        bytes: outcome?.receivedBytes ?? receivedBytes,
        valid: outcome?.valid,
        invalid: outcome?.invalid,
        ms: Math.round(seconds * 1e4) / 10,
      },
      'ingest',
    );
  }
}

/**
 * `{"result":{"status":"ok","stats":{…},"request_id":…[,"errors":[…]]}}` without a serializer; on
 * `/v0/events` Tinybird's `successful_rows` and `quarantined_rows` come first.
 */
function successBody(o: IngestOutcome, requestId: string, tinybird: boolean): string {
  const errors = o.errors.length > 0 ? `,"errors":${JSON.stringify(o.errors)}` : '';
  const head = tinybird ? `{"successful_rows":${o.valid},"quarantined_rows":${o.invalid},` : '{';
  return (
    `${head}"result":{"status":"ok","stats":{"bytes":${o.receivedBytes},"records":{"valid":${o.valid},` +
    `"invalid":${o.invalid},"total":${o.valid + o.invalid}}},"request_id":${JSON.stringify(requestId)}${errors}}}`
  );
}
