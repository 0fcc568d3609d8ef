/**
 * Throughput scenarios: the reference body (16 × the NYC sample, 1,600 records) POSTed over
 * keep-alive connections by 1, 2, 4 and 8 VUs, 2,048 requests each, one scenario after the other.
 * The shapes come from ./scenarios.json, shared with the Node bench.
 *
 *   k6 run k6/ingest.js
 *   k6 run -e CONCURRENCY=4 k6/ingest.js          # one shape only, starting at once
 *   k6 run -e BODY=generated k6/ingest.js         # without ../shared: generated taxi-like body
 *   k6 run -e BASE_URL=http://10.0.0.5:8888 k6/ingest.js
 *
 * Environment: BASE_URL, INGEST_PATH, CONCURRENCY (comma-separated), BODY ('generated'),
 * BODY_FILE (resolved by k6 relative to this file), EXPECT_VALID, TOKEN (bearer token).
 */
import http from 'k6/http';
import { check } from 'k6';
import { taxiBody } from './lib/ndjson-bodies.js';
import { addScenarioThresholds, answerOf, ingestChecks } from './lib/answer.js';

const config = JSON.parse(open('./scenarios.json'));
const reference = config.bodies.reference;

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8888').replace(/\/+$/, '');
const INGEST_URL = BASE_URL + (__ENV.INGEST_PATH || config.path);

function repeat(text, copies) {
  // A file without a final LF would glue its last line to the next copy's first.
  const unit = text.length > 0 && text[text.length - 1] !== '\n' ? text + '\n' : text;
  const parts = [];
  for (let i = 0; i < copies; i++) parts.push(unit);
  return parts.join('');
}

function countRecords(text) {
  let n = 0;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) if (!/^[ \t\r]*$/.test(lines[i])) n++;
  return n;
}

function loadBody() {
  if (__ENV.BODY === 'generated') {
    return { text: taxiBody(reference.generatedRecords, reference.generatedSeed), valid: null };
  }
  const text = repeat(
    open(__ENV.BODY_FILE || '../../shared/data/nyc_taxi_example.ndjson'),
    reference.copies,
  );
  // Another file: every non-blank line is expected to be valid unless EXPECT_VALID says otherwise.
  return { text: text, valid: __ENV.BODY_FILE ? countRecords(text) : null };
}

const body = loadBody();
const BODY = body.text;
const EXPECT_VALID = __ENV.EXPECT_VALID
  ? Number(__ENV.EXPECT_VALID)
  : body.valid === null
    ? reference.expect.valid
    : body.valid;

const PARAMS = {
  headers: __ENV.TOKEN
    ? { 'Content-Type': 'application/x-ndjson', Authorization: 'Bearer ' + __ENV.TOKEN }
    : { 'Content-Type': 'application/x-ndjson' },
  tags: { name: 'POST ' + (__ENV.INGEST_PATH || config.path) },
};

function selectedShapes() {
  if (!__ENV.CONCURRENCY) return config.scenarios;
  const wanted = __ENV.CONCURRENCY.split(',').map(function (s) {
    return Number(s.trim());
  });
  const shapes = config.scenarios.filter(function (s) {
    return wanted.indexOf(s.concurrency) >= 0;
  });
  if (shapes.length !== wanted.length) {
    throw new Error(
      'CONCURRENCY=' +
        __ENV.CONCURRENCY +
        ': scenarios.json defines concurrency ' +
        config.scenarios
          .map(function (s) {
            return s.concurrency;
          })
          .join(', '),
    );
  }
  return shapes;
}

// k6 cannot start a scenario when the previous one ends, so each starts after the previous one's
// maxDuration plus its gracefulStop: they never overlap, and a scenario that finishes early only
// leaves an idle gap.
const GRACEFUL_STOP_SECONDS = 10;
const scenarios = {};
const thresholds = {};
let offset = 0;
selectedShapes().forEach(function (shape) {
  scenarios[shape.name] = {
    executor: 'shared-iterations',
    vus: shape.concurrency,
    iterations: shape.requests,
    maxDuration: shape.maxDurationSeconds + 's',
    startTime: offset + 's',
    gracefulStop: GRACEFUL_STOP_SECONDS + 's',
    tags: { concurrency: String(shape.concurrency) },
  };
  offset += shape.maxDurationSeconds + GRACEFUL_STOP_SECONDS;
  addScenarioThresholds(thresholds, shape.name, config.thresholds);
});

export const options = {
  scenarios: scenarios,
  thresholds: thresholds,
  // Keep-alive: one connection per VU for the whole run (k6's default, stated on purpose).
  noConnectionReuse: false,
  noVUConnectionReuse: false,
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(99)', 'max'],
};

export default function () {
  const res = http.post(INGEST_URL, BODY, PARAMS);
  check(res, ingestChecks(answerOf(res), EXPECT_VALID));
}
