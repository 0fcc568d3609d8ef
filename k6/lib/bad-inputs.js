// The requests of k6/bad-input.js: one per error code of the catalogue (src/http/errors.ts) that a
// well-formed HTTP client can provoke, with the status and code the service must answer. Plain
// data and builders, no k6 import: test/k6/bad-input.e2e.test.ts replays the same cases against
// the real service.
//
// Not here, because a client cannot provoke them at the default settings or k6 cannot send them:
// bad_request (malformed HTTP), not_implemented (k6 sets Transfer-Encoding itself),
// client_aborted, body_timeout, request_timeout, body_too_slow (they need a client that stalls),
// decoded_body_too_large and quarantine_too_large (1 GiB and 64 MiB), overloaded, no_space,
// lock_timeout, commit_record_unreadable, internal (server-side conditions). The service's own
// tests cover each of them (test/ingest, test/csv, test/health).

/** A zstd frame header declaring a 1 GiB window (Window_Descriptor 0xA7), then an empty last block. */
const ZSTD_1GIB_WINDOW = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xa7, 0x01, 0x00, 0x00];

/**
 * env: TOKEN (a valid bearer token, when the service has tokens), MAX_BODY_BYTES (the service's
 * limit, when small enough to send one byte more), DATASET (a dataset name that exists).
 */
export function badInputs(env) {
  const auth = env.TOKEN ? { Authorization: 'Bearer ' + env.TOKEN } : {};
  const line = '{"vendorid":1}\n';
  const cases = [
    {
      code: 'not_found',
      status: 404,
      method: 'POST',
      path: '/no-such-route',
      headers: auth,
      body: line,
    },
    {
      code: 'method_not_allowed',
      status: 405,
      method: 'GET',
      path: '/ingest',
      headers: auth,
      body: null,
    },
    {
      code: 'unknown_dataset',
      status: 404,
      method: 'POST',
      path: '/ingest/no_such_dataset',
      headers: auth,
      body: line,
    },
    {
      code: 'unknown_dataset',
      status: 404,
      method: 'POST',
      path: '/v0/events?name=no_such_dataset',
      headers: auth,
      body: line,
    },
    {
      code: 'unsupported_encoding',
      status: 415,
      method: 'POST',
      path: '/ingest',
      headers: Object.assign({ 'Content-Encoding': 'compress' }, auth),
      body: line,
    },
    {
      code: 'corrupt_body',
      status: 400,
      method: 'POST',
      path: '/ingest',
      headers: Object.assign({ 'Content-Encoding': 'gzip' }, auth),
      body: 'this is not gzip',
    },
    {
      code: 'window_too_large',
      status: 413,
      method: 'POST',
      path: '/ingest',
      headers: Object.assign({ 'Content-Encoding': 'zstd' }, auth),
      body: new Uint8Array(ZSTD_1GIB_WINDOW).buffer,
    },
    {
      code: 'expectation_failed',
      status: 417,
      method: 'POST',
      path: '/ingest',
      headers: Object.assign({ Expect: 'something-else' }, auth),
      body: line,
    },
    {
      code: 'header_too_large',
      status: 431,
      method: 'POST',
      path: '/ingest',
      headers: Object.assign({ 'X-Padding': new Array(20001).join('a') }, auth),
      body: line,
    },
  ];
  if (env.TOKEN) {
    cases.push({
      code: 'unauthorized',
      status: 401,
      method: 'POST',
      path: '/ingest',
      headers: { Authorization: 'Bearer not-' + env.TOKEN },
      body: line,
    });
  }
  if (env.MAX_BODY_BYTES && Number(env.MAX_BODY_BYTES) < 1048576) {
    cases.push({
      code: 'body_too_large',
      status: 413,
      method: 'POST',
      path: '/ingest',
      headers: auth,
      body: new Array(Number(env.MAX_BODY_BYTES) + 2).join('x'),
    });
  }
  if (env.DATASET) {
    cases.push({
      code: null, // a control: the same request to an existing dataset is taken
      status: 200,
      method: 'POST',
      path: '/ingest/' + env.DATASET,
      headers: auth,
      body: line,
    });
  }
  return cases;
}

/** Whether an answer is the service's error shape with `code` (or a 200 for a control case). */
export function answersAsExpected(c, status, answer) {
  if (status !== c.status) return false;
  if (c.code === null) return Boolean(answer && answer.result && answer.result.status === 'ok');
  return Boolean(
    answer &&
    answer.result &&
    answer.result.status === 'error' &&
    answer.result.error &&
    answer.result.error.code === c.code &&
    typeof answer.result.error.message === 'string' &&
    typeof answer.result.request_id === 'string',
  );
}
