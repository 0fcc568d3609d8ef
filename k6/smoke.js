/**
 * Smoke: one VU, a few requests of each kind a deployment must take: the reference body, a
 * one-record body, a gzip body; every answer a 200 with the right counts. Run it after a deploy.
 *
 *   k6 run k6/smoke.js
 *   k6 run -e BASE_URL=http://10.0.0.5:8888 -e TOKEN=s3cr3t k6/smoke.js
 *
 * Environment: BASE_URL, INGEST_PATH, TOKEN, ITERATIONS (default 5). Bodies are generated.
 */
import http from 'k6/http';
import { check } from 'k6';
import { taxiBody } from './lib/ndjson-bodies.js';
import { answerOf } from './lib/answer.js';

const config = JSON.parse(open('./scenarios.json'));
const reference = config.bodies.reference;
const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8888').replace(/\/+$/, '');
const URL = BASE_URL + (__ENV.INGEST_PATH || config.path);
const HEADERS = __ENV.TOKEN
  ? { 'Content-Type': 'application/x-ndjson', Authorization: 'Bearer ' + __ENV.TOKEN }
  : { 'Content-Type': 'application/x-ndjson' };

const KINDS = [
  {
    name: 'reference',
    body: taxiBody(reference.generatedRecords, reference.generatedSeed),
    valid: reference.generatedRecords,
  },
  { name: 'one record', body: taxiBody(1, 7), valid: 1 },
  { name: 'gzip', body: taxiBody(100, 8), valid: 100, compression: 'gzip' },
];

export const options = {
  scenarios: {
    smoke: {
      executor: 'per-vu-iterations',
      vus: 1,
      iterations: Number(__ENV.ITERATIONS || 5),
      maxDuration: '60s',
    },
  },
  thresholds: { http_req_failed: ['rate==0'], checks: ['rate==1'] },
  noConnectionReuse: false,
};

let turn = 0;

export default function () {
  const kind = KINDS[turn++ % KINDS.length];
  const params = {
    headers: HEADERS,
    tags: { name: 'POST ' + (__ENV.INGEST_PATH || config.path), body: kind.name },
  };
  if (kind.compression) params.compression = kind.compression;
  const res = http.post(URL, kind.body, params);
  const answer = answerOf(res);
  const stats = answer && answer.result && answer.result.stats;
  check(res, {
    'status is 200': function (r) {
      return r.status === 200;
    },
    ['result.stats.records.valid is as sent']: function () {
      return Boolean(
        stats && stats.records && stats.records.valid === kind.valid && stats.records.invalid === 0,
      );
    },
  });
}
