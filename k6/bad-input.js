/**
 * Bad input: one request per error code a client can provoke (k6/lib/bad-inputs.js lists them and
 * those it cannot), each checked for its status and the service's JSON error shape with its code.
 * A correct service passes every check; nothing of these requests is written.
 *
 *   k6 run k6/bad-input.js
 *   k6 run -e TOKEN=s3cr3t -e MAX_BODY_BYTES=1024 -e DATASET=trips k6/bad-input.js
 *
 * Environment: BASE_URL, TOKEN (adds the 401 case), MAX_BODY_BYTES (adds the 413 case when the
 * service's limit is under 1 MiB), DATASET (adds a control request that must be a 200),
 * ITERATIONS (default 1).
 */
import http from 'k6/http';
import { check } from 'k6';
import { badInputs, answersAsExpected } from './lib/bad-inputs.js';
import { answerOf } from './lib/answer.js';

// scenarios.json is read for the base path, like every script (and so the checks see one source).
const config = JSON.parse(open('./scenarios.json'));
const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8888').replace(/\/+$/, '');
const CASES = badInputs(__ENV);

export const options = {
  scenarios: {
    bad_input: {
      executor: 'per-vu-iterations',
      vus: 1,
      iterations: Number(__ENV.ITERATIONS || 1),
      maxDuration: '60s',
    },
  },
  thresholds: { checks: ['rate==1'] },
  // Error answers are the point here: they are not failed requests.
  noConnectionReuse: false,
};

http.setResponseCallback(http.expectedStatuses(200, 404, 405, 400, 401, 413, 415, 417, 431));

export default function () {
  for (let i = 0; i < CASES.length; i++) {
    const c = CASES[i];
    const res = http.request(c.method, BASE_URL + c.path, c.body, {
      headers: c.headers,
      tags: { name: (c.code || 'control') + ' ' + c.method + ' ' + c.path.split('?')[0] },
    });
    const answer = answerOf(res);
    check(res, {
      [(c.code || 'control 200') +
      ' (' +
      c.method +
      ' ' +
      c.path +
      '): status ' +
      c.status +
      ' and JSON shape']: function (r) {
        return answersAsExpected(c, r.status, answer);
      },
    });
  }
  void config;
}
