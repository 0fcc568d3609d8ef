/**
 * Load: a constant arrival rate of reference bodies (scenarios.json `load`), below capacity: the
 * service must keep up (no dropped iterations), answer every request 200 and keep p99 under the
 * threshold. Raise RATE step by step to find the rate where it no longer does.
 *
 *   k6 run k6/load.js
 *   k6 run -e RATE=400 -e DURATION=10m k6/load.js
 *   k6 run -e DATASETS=trips,events k6/load.js     # one scenario per dataset route
 *
 * Environment: BASE_URL, RATE (requests per second), DURATION, TOKEN, BODY ('generated' or the
 * sample), DATASETS (comma-separated: adds a scenario for /ingest/{name} and one for
 * /v0/events?name={name} per dataset, each at RATE).
 */
import http from 'k6/http';
import { check } from 'k6';
import { taxiBody } from './lib/ndjson-bodies.js';
import { addScenarioThresholds, answerOf, ingestChecks } from './lib/answer.js';

const config = JSON.parse(open('./scenarios.json'));
const load = config.load;
const reference = config.bodies.reference;
const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8888').replace(/\/+$/, '');
const RATE = Number(__ENV.RATE || load.rate);
const DURATION = __ENV.DURATION || load.duration;
const HEADERS = __ENV.TOKEN
  ? { 'Content-Type': 'application/x-ndjson', Authorization: 'Bearer ' + __ENV.TOKEN }
  : { 'Content-Type': 'application/x-ndjson' };

const BODY = taxiBody(reference.generatedRecords, reference.generatedSeed);
const EXPECT_VALID = reference.generatedRecords;

// The routes: the default one, and per dataset its two routes (SPEC §3).
const routes = [{ name: 'default', path: config.path }];
(__ENV.DATASETS ? __ENV.DATASETS.split(',') : []).forEach(function (d) {
  const name = d.trim();
  if (name === '') return;
  routes.push({ name: 'ingest_' + name, path: '/ingest/' + encodeURIComponent(name) });
  routes.push({ name: 'events_' + name, path: '/v0/events?name=' + encodeURIComponent(name) });
});

const scenarios = {};
const thresholds = { dropped_iterations: ['count==0'] };
routes.forEach(function (r) {
  scenarios[r.name] = {
    executor: 'constant-arrival-rate',
    rate: RATE,
    timeUnit: '1s',
    duration: DURATION,
    preAllocatedVUs: load.preAllocatedVUs,
    maxVUs: load.maxVUs,
    exec: 'post',
    env: { ROUTE: r.path },
    tags: { route: r.name },
  };
  addScenarioThresholds(thresholds, r.name, load.thresholds);
});

export const options = {
  scenarios: scenarios,
  thresholds: thresholds,
  noConnectionReuse: false,
  summaryTrendStats: ['avg', 'med', 'p(90)', 'p(99)', 'max'],
};

export function post() {
  const path = __ENV.ROUTE || config.path;
  const res = http.post(BASE_URL + path, BODY, {
    headers: HEADERS,
    tags: { name: 'POST ' + path.split('?')[0] },
  });
  check(res, ingestChecks(answerOf(res), EXPECT_VALID));
}

export default function () {
  post();
}
