/**
 * Request bodies for the k6 scripts, built once per VU in the init context.
 *
 * The taxi-like generator is a line-for-line port of test/support/taxi.ts (same PRNG, same call
 * order), so `taxiBody(1600, 1)` here is byte-identical to the project's generated reference body;
 * test/k6/k6-scripts.test.ts holds the two together. No imports: k6 runs this in its own
 * JavaScript runtime, not Node.js.
 */

/** mulberry32, as in test/support/taxi.ts. */
export function prng(seed) {
  let a = seed >>> 0;
  return function next() {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function money(r, max) {
  return Math.round(r() * max * 100) / 100;
}

function timestamp(seconds) {
  return new Date(Date.UTC(2017, 0, 1) + seconds * 1000)
    .toISOString()
    .slice(0, 19)
    .replace('T', ' ');
}

/** One taxi-like record as an NDJSON line, without the LF. */
export function taxiRecord(r, index) {
  const pickup = index * 2 + Math.floor(r() * 3);
  const fare = money(r, 60);
  const record = {
    vendorid: 1 + Math.floor(r() * 2),
    tpep_pickup_datetime: timestamp(pickup),
    tpep_dropoff_datetime: timestamp(pickup + Math.floor(r() * 3600)),
    passenger_count: 1 + Math.floor(r() * 5),
    trip_distance: money(r, 20),
    ratecodeid: 1 + Math.floor(r() * 2),
    store_and_fwd_flag: r() < 0.98 ? 'N' : 'Y',
    pulocationid: 1 + Math.floor(r() * 265),
    dolocationid: 1 + Math.floor(r() * 265),
    payment_type: 1 + Math.floor(r() * 2),
    fare_amount: fare,
    extra: r() < 0.5 ? 0 : 0.5,
    mta_tax: 0.5,
    tip_amount: money(r, 10),
    tolls_amount: r() < 0.9 ? 0 : 5.54,
    improvement_surcharge: 0.3,
    total_amount: Math.round((fare + 0.8) * 100) / 100,
  };
  return JSON.stringify(record);
}

/** `count` generated records, each line ending with LF (test/support/taxi.ts `taxiBody`). */
export function taxiBody(count, seed) {
  const r = prng(seed === undefined ? 1 : seed);
  const lines = [];
  for (let i = 0; i < count; i++) lines.push(taxiRecord(r, i));
  return lines.length === 0 ? '' : lines.join('\n') + '\n';
}

/**
 * Invalid lines and the reason code SPEC §4 gives each. All ASCII, so that `bytes` in the answer
 * equals the string length; none depends on CSV_COLUMNS.
 */
export const INVALID_LINES = [
  ['{"vendorid":1,"total_amount":5,}', 'invalid_json'], // trailing comma
  ['[1,2,3]', 'not_object'],
  ['{"vendorid":01}', 'invalid_json'], // leading zero
  ['{"total_amount":NaN}', 'invalid_json'],
  ['"a string"', 'not_object'],
  ['{"vendorid":2,"tpep_pickup_datetime":"2017-01-01 00:00:00"', 'invalid_json'], // truncated
  ['\f', 'invalid_json'], // a form feed is not JSON whitespace: the line is not blank
  ['{"vendorid":1} {"vendorid":2}', 'invalid_json'], // two JSON texts on one line
  ['{"vendorid":"a\tb"}', 'invalid_json'], // raw TAB inside a string: must be escaped
  ['null', 'not_object'],
  ['{"vendorid":1 // comment}', 'invalid_json'],
];

/** Lines that are skipped and not counted: empty, JSON whitespace only, a lone CR (CRLF). */
const BLANK_LINES = ['', ' \t ', '\r'];

/**
 * A body of `spec.records` valid taxi-like lines with `spec.invalid` invalid lines spread evenly
 * among them. When it has invalid lines it also carries what must not be counted (SPEC §4):
 * whitespace-only lines and CRLF line ends.
 *
 * Returns the body and what the answer must say about it: valid, invalid, and `errors`, the
 * first ten invalid lines as `{line, error}` with 1-based physical line numbers.
 */
export function mixedBody(spec, seed) {
  const r = prng(seed);
  const total = spec.records + spec.invalid;
  const dirty = spec.invalid > 0;
  const out = [];
  const errors = [];
  let invalid = 0;
  let valid = 0;
  for (let i = 0; i < total; i++) {
    if (dirty && i % 37 === 5) out.push(BLANK_LINES[Math.floor(i / 37) % BLANK_LINES.length]);
    // Bresenham: among the first i + 1 positions, floor((i + 1) * invalid / total) are invalid.
    if (Math.floor(((i + 1) * spec.invalid) / total) > invalid) {
      const entry = INVALID_LINES[(seed + invalid) % INVALID_LINES.length];
      out.push(entry[0]);
      if (errors.length < 10) errors.push({ line: out.length, error: entry[1] });
      invalid++;
      continue;
    }
    const line = taxiRecord(r, valid);
    out.push(dirty && valid % 5 === 1 ? line + '\r' : line);
    valid++;
  }
  return {
    body: out.join('\n') + '\n',
    expect: { valid: valid, invalid: invalid, errors: errors },
  };
}
