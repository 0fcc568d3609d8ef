/**
 * Soak: a constant arrival rate of mixed requests for a long time (scenarios.json `soak`):
 * one-record bodies, 100-line bodies with invalid lines, the reference size, and a large gzip
 * body with invalid lines. Every answer is checked against what was sent: valid and invalid
 * counts, `bytes`, and the line number and reason code of the first ten invalid lines.
 *
 *   k6 run k6/soak.js
 *   k6 run -e RATE=50 -e DURATION=2h k6/soak.js
 *
 * Environment: BASE_URL, INGEST_PATH, RATE (requests per second), DURATION, TOKEN.
 * Bodies are generated (no ../shared needed); every VU holds one copy of each (~3 MB in all).
 */
import http from 'k6/http';
import exec from 'k6/execution';
import { check } from 'k6';
import { Counter } from 'k6/metrics';
import { mixedBody } from './lib/ndjson-bodies.js';
import { answerOf } from './lib/answer.js';

const config = JSON.parse(open('./scenarios.json'));
const soak = config.soak;

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8888').replace(/\/+$/, '');
const INGEST_PATH = __ENV.INGEST_PATH || config.path;
const INGEST_URL = BASE_URL + INGEST_PATH;

const HEADERS = __ENV.TOKEN
  ? { 'Content-Type': 'application/x-ndjson', Authorization: 'Bearer ' + __ENV.TOKEN }
  : { 'Content-Type': 'application/x-ndjson' };

// One body per mix entry, built once; the seed differs per entry so that the invalid lines vary.
const BODIES = soak.mix.map(function (spec, i) {
  const built = mixedBody(spec, 1000 + i);
  const params = {
    headers: HEADERS,
    tags: { name: 'POST ' + INGEST_PATH, body: spec.name },
  };
  if (spec.gzip) params.compression = 'gzip';
  return { spec: spec, body: built.body, expect: built.expect, params: params };
});

/**
 * Smooth weighted round-robin (as nginx balances upstreams): the order in which the bodies are
 * sent, each entry `weight` times per cycle, interleaved rather than in blocks.
 */
function schedule(mix) {
  const current = mix.map(function () {
    return 0;
  });
  const total = mix.reduce(function (sum, m) {
    return sum + m.weight;
  }, 0);
  const order = [];
  for (let n = 0; n < total; n++) {
    let best = 0;
    for (let i = 0; i < mix.length; i++) {
      current[i] += mix[i].weight;
      if (current[i] > current[best]) best = i;
    }
    current[best] -= total;
    order.push(best);
  }
  return order;
}

const ORDER = schedule(soak.mix);

const recordsSent = new Counter('ndjson_records_sent');

export const options = {
  scenarios: {
    soak: {
      executor: 'constant-arrival-rate',
      rate: Number(__ENV.RATE || soak.rate),
      timeUnit: soak.timeUnit,
      duration: __ENV.DURATION || soak.duration,
      preAllocatedVUs: soak.preAllocatedVUs,
      maxVUs: soak.maxVUs,
    },
  },
  thresholds: Object.keys(soak.thresholds).reduce(function (out, metric) {
    out[metric] = [soak.thresholds[metric]];
    return out;
  }, {}),
  noConnectionReuse: false,
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(99)', 'max'],
};

function sameErrors(got, expected) {
  const list = got || [];
  if (list.length !== expected.length) return false;
  for (let i = 0; i < expected.length; i++) {
    if (!list[i] || list[i].line !== expected[i].line || list[i].error !== expected[i].error) {
      return false;
    }
  }
  return true;
}

export default function () {
  const item = BODIES[ORDER[exec.scenario.iterationInTest % ORDER.length]];
  const expect = item.expect;
  recordsSent.add(expect.valid, { result: 'valid' });
  recordsSent.add(expect.invalid, { result: 'invalid' });

  const res = http.post(INGEST_URL, item.body, item.params);
  const answer = answerOf(res);
  const result = answer && answer.result;
  const stats = result && result.stats;
  const records = (stats && stats.records) || {};
  const tags = { body: item.spec.name };

  check(
    res,
    {
      'status is 200': function (r) {
        return r.status === 200;
      },
      'records.valid as sent': function () {
        return records.valid === expect.valid;
      },
      'records.invalid as sent': function () {
        return records.invalid === expect.invalid;
      },
      'records.total is valid + invalid': function () {
        return records.total === expect.valid + expect.invalid;
      },
      // With gzip, `bytes` is the compressed size, which only the client library knows.
      'bytes as sent': function () {
        return item.spec.gzip ? Boolean(stats) : Boolean(stats) && stats.bytes === item.body.length;
      },
      'errors name the first invalid lines': function () {
        return Boolean(result) && sameErrors(result.errors, expect.errors);
      },
    },
    tags,
  );
}
