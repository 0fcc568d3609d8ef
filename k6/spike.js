/**
 * Spike: arrivals ramp to SPIKE_FACTOR × RATE (scenarios.json `spike`), hold, and fall back. An
 * overloaded service must refuse quickly rather than queue: every answer is a 200, or a 503 with
 * Retry-After, and nothing times out. `npm run bench:spike` runs the same shape from Node.
 *
 *   k6 run k6/spike.js
 *   k6 run -e RATE=300 -e SPIKE_FACTOR=3 k6/spike.js
 *
 * Environment: BASE_URL, INGEST_PATH, RATE (the service's capacity, requests per second),
 * SPIKE_FACTOR, TOKEN.
 */
import http from 'k6/http';
import { check } from 'k6';
import { taxiBody } from './lib/ndjson-bodies.js';
import { answerOf } from './lib/answer.js';

const config = JSON.parse(open('./scenarios.json'));
const spike = config.spike;
const reference = config.bodies.reference;
const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8888').replace(/\/+$/, '');
const URL = BASE_URL + (__ENV.INGEST_PATH || config.path);
const RATE = Number(__ENV.RATE || spike.rate);
const PEAK = Math.round(RATE * Number(__ENV.SPIKE_FACTOR || spike.factor));
const HEADERS = __ENV.TOKEN
  ? { 'Content-Type': 'application/x-ndjson', Authorization: 'Bearer ' + __ENV.TOKEN }
  : { 'Content-Type': 'application/x-ndjson' };
const BODY = taxiBody(reference.generatedRecords, reference.generatedSeed);

export const options = {
  scenarios: {
    spike: {
      executor: 'ramping-arrival-rate',
      startRate: RATE,
      timeUnit: '1s',
      preAllocatedVUs: spike.preAllocatedVUs,
      maxVUs: spike.maxVUs,
      stages: [
        { target: RATE, duration: spike.before },
        { target: PEAK, duration: '2s' },
        { target: PEAK, duration: spike.hold },
        { target: RATE, duration: '2s' },
        { target: RATE, duration: spike.after },
      ],
    },
  },
  thresholds: spike.thresholds,
  noConnectionReuse: false,
};

// A 503 with Retry-After is the expected refusal, not a failed request.
http.setResponseCallback(http.expectedStatuses(200, 503));

export default function () {
  const res = http.post(URL, BODY, {
    headers: HEADERS,
    tags: { name: 'POST ' + (__ENV.INGEST_PATH || config.path) },
    timeout: '30s',
  });
  const answer = answerOf(res);
  check(res, {
    'status is 200, or 503 with Retry-After': function (r) {
      if (r.status === 200) return true;
      return (
        r.status === 503 &&
        Boolean(r.headers['Retry-After']) &&
        Boolean(
          answer &&
          answer.result &&
          answer.result.error &&
          answer.result.error.code === 'overloaded',
        )
      );
    },
  });
}
