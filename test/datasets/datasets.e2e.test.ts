/**
 * Datasets end to end (SPEC §3, §8): the real server with a datasets file: every route, tokens,
 * an unknown dataset, typed rows and column-level reasons, the header once per new file, the
 * dataset label in metrics, Tinybird's own SDK, and bad files refused at start-up.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { TinybirdApi, TinybirdApiError } from '@tinybirdco/sdk';
import { tryLock, unlock } from 'fs-native-extensions';
import { lockFilePath } from '../../src/csv/commit-record.js';
import { MAIN, ROOT, send, startServer, tempDir, type RunningServer } from '../support/server.js';

const DATASETS = `
default: trips
datasets:
  trips:
    prefix: trips_typed
    eol: lf
    header: true
    columns:
      - { name: vendor, path: $.vendorid, type: int }
      - { name: pickup, path: $.tpep_pickup_datetime, type: datetime }
      - { name: distance, path: $.trip_distance, type: float, nullable: false }
  events:
    tokens: [events-token]
    columns:
      - { name: at, path: $.ts, type: datetime }
      - { name: user, path: $.user.id, type: int, nullable: false }
      - { name: city, path: '$.user.address["city name"]', type: string, default: "n/a" }
      - { name: tag, path: '$.tags[1]' }
      - { name: rid, meta: request_id }
      - { name: line, meta: line }
`;

const day = (): string => {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
};

function writeDatasets(text: string): string {
  const file = join(tempDir('datasets-'), 'datasets.yaml');
  writeFileSync(file, text);
  return file;
}

describe('datasets', () => {
  let server: RunningServer;
  const auth = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

  beforeAll(async () => {
    server = await startServer({
      DATASETS_FILE: writeDatasets(DATASETS),
      INGEST_TOKENS: 'admin-token',
    });
  });
  afterAll(async () => {
    await server?.stop();
  });

  const file = (prefix: string): string => join(server.csvDir, `${prefix}-${day()}.csv`);

  it('routes /, /ingest and /ingest/{dataset} to the right dataset, with the header once per new file', async () => {
    const trip = (v: number) =>
      `{"vendorid":${v},"tpep_pickup_datetime":"2017-01-01T00:30:00+01:00","trip_distance":1.5}\n`;
    for (const path of ['/', '/ingest', '/ingest/trips']) {
      const a = await send(server.url + path, Buffer.from(trip(1) + trip(2)), auth('admin-token'));
      expect(a.status).toBe(200);
      expect(a.json.result.stats.records).toEqual({ valid: 2, invalid: 0, total: 2 });
    }
    const row = '1,2016-12-31 23:30:00,1.5\n2,2016-12-31 23:30:00,1.5\n';
    expect(readFileSync(file('trips_typed'), 'utf8')).toBe(
      'vendor,pickup,distance\n' + row + row + row,
    );
  });

  it('reports type_mismatch and missing_value with the column, in errors and the quarantine', async () => {
    const body =
      '{"vendorid":1.5,"tpep_pickup_datetime":"2017-01-01 00:00:00","trip_distance":1}\n' +
      '{"vendorid":1,"tpep_pickup_datetime":"2017-01-01 00:00:00"}\n' +
      '{"vendorid":3,"tpep_pickup_datetime":1700000000,"trip_distance":2}\n';
    const a = await send(`${server.url}/ingest/trips`, Buffer.from(body), auth('admin-token'));
    expect(a.status).toBe(200);
    expect(a.json.result.stats.records).toEqual({ valid: 1, invalid: 2, total: 3 });
    expect(a.json.result.errors).toMatchObject([
      { line: 1, error: 'type_mismatch', column: 'vendor' },
      { line: 2, error: 'missing_value', column: 'distance' },
    ]);
    const q = readFileSync(join(server.csvDir, `trips_typed-${day()}.quarantine.ndjson`), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(q.slice(-2)).toMatchObject([
      { line: 1, error: 'type_mismatch', column: 'vendor', raw: body.split('\n')[0] },
      { line: 2, error: 'missing_value', column: 'distance', raw: body.split('\n')[1] },
    ]);
    expect(readFileSync(file('trips_typed'), 'utf8').endsWith('3,2023-11-14 22:13:20,2\n')).toBe(
      true,
    );
  });

  it('answers /v0/events with Tinybird fields, nested paths, defaults and meta columns', async () => {
    const body =
      '{"ts":"2026-01-01T12:00:00Z","user":{"id":7,"address":{"city name":"Lyon, FR"}},"tags":["a","b"]}\n\n' +
      '{"ts":0,"user":{"id":8}}\n' +
      '{"ts":"bad","user":{"id":9}}\n';
    const a = await send(
      `${server.url}/v0/events?name=events&wait=true`,
      Buffer.from(body),
      auth('events-token'),
    );
    expect(a.status).toBe(200);
    expect(a.json).toMatchObject({
      successful_rows: 2,
      quarantined_rows: 1,
      result: { status: 'ok', stats: { records: { valid: 2, invalid: 1, total: 3 } } },
    });
    const rid = a.json.result.request_id;
    expect(readFileSync(file('events'), 'utf8')).toBe(
      `2026-01-01 12:00:00,7,"Lyon, FR",b,${rid},1\r\n1970-01-01 00:00:00,8,n/a,,${rid},3\r\n`,
    );
  });

  it('needs a token of the dataset or INGEST_TOKENS: 401 without or unknown, 403 for another dataset', async () => {
    const body = Buffer.from('{"ts":0,"user":{"id":1}}\n');
    const before = readFileSync(file('events'), 'utf8');
    expect((await send(`${server.url}/ingest/events`, body)).status).toBe(401);
    expect((await send(`${server.url}/ingest/events`, body, auth('nope'))).status).toBe(401);
    const forbidden = await send(`${server.url}/ingest/trips`, body, auth('events-token'));
    expect(forbidden.status).toBe(403);
    expect(forbidden.json.result.error.code).toBe('forbidden');
    const tb = await send(`${server.url}/v0/events?name=trips`, body, auth('events-token'));
    expect(tb.status).toBe(403);
    expect(typeof tb.json.error).toBe('string');
    expect(readFileSync(file('events'), 'utf8')).toBe(before);
    expect((await send(`${server.url}/ingest/events`, body, auth('admin-token'))).status).toBe(200);
  });

  it('answers 404 unknown_dataset (after 401 for a token valid nowhere) and writes nothing', async () => {
    const files = readdirSync(server.csvDir).sort();
    const body = Buffer.from('{"a":1}\n');
    const a = await send(`${server.url}/ingest/nope`, body, auth('events-token'));
    expect(a.status).toBe(404);
    expect(a.json.result.error.code).toBe('unknown_dataset');
    expect((await send(`${server.url}/ingest/nope`, body)).status).toBe(401);
    const tb = await send(`${server.url}/v0/events?name=nope`, body, auth('admin-token'));
    expect(tb.status).toBe(404);
    expect(tb.json.error).toMatch(/no dataset named "nope"/);
    expect((await send(`${server.url}/v0/events`, body, auth('admin-token'))).status).toBe(404);
    expect(readdirSync(server.csvDir).sort()).toEqual(files);
  });

  it('labels the per-request metrics with the dataset', async () => {
    const m = await send(`${server.url}/metrics`, null, { method: 'GET' });
    expect(m.text).toMatch(
      /ingest_records_total\{dataset="events",result="valid",worker="0"\} [1-9]/,
    );
    expect(m.text).toMatch(/ingest_records_total\{dataset="trips",result="invalid",worker="0"\} 2/);
    expect(m.text).toMatch(/ingest_requests_total\{dataset="trips",status="403",worker="0"\} 2/);
    expect(m.text).toMatch(
      /ingest_parse_duration_seconds_count\{dataset="trips",worker="0"\} [1-9]/,
    );
    expect(m.text).toMatch(/ingest_requests_total\{dataset="",status="404",worker="0"\} [1-9]/);
  });

  describe("Tinybird's SDK", () => {
    it('ingests a batch, and gets its errors for an unknown dataset and a wrong token', async () => {
      const api = new TinybirdApi({ baseUrl: server.url, token: 'events-token' });
      const before = readFileSync(file('events'), 'utf8');
      const result = await api.ingestBatch('events', [
        { ts: '2026-02-03 04:05:06.789', user: { id: 1, address: { 'city name': 'Oslo' } } },
        { ts: 1, user: { id: 'two' } },
      ]);
      expect(result).toMatchObject({ successful_rows: 1, quarantined_rows: 1 });
      const added = readFileSync(file('events'), 'utf8').slice(before.length);
      expect(added).toMatch(/^2026-02-03 04:05:06\.789,1,Oslo,,[^,]+,1\r\n$/);

      const unknown = await api.ingestBatch('nope', [{ a: 1 }]).catch((e: unknown) => e);
      expect(unknown).toBeInstanceOf(TinybirdApiError);
      expect((unknown as TinybirdApiError).statusCode).toBe(404);
      expect((unknown as TinybirdApiError).message).toMatch(/no dataset named "nope"/);

      const wrong = new TinybirdApi({ baseUrl: server.url, token: 'wrong' });
      const denied = await wrong.ingestBatch('events', [{ a: 1 }]).catch((e: unknown) => e);
      expect((denied as TinybirdApiError).statusCode).toBe(401);
      const other = await api.ingestBatch('trips', [{ a: 1 }]).catch((e: unknown) => e);
      expect((other as TinybirdApiError).statusCode).toBe(403);
    });
  });
});

describe("Tinybird's SDK retries a 503", () => {
  it('gets 503 overloaded with Retry-After while the worker is full, retries, and is written once', async () => {
    const server = await startServer({
      DATASETS_FILE: writeDatasets(DATASETS),
      MAX_IN_FLIGHT: '1',
    });
    try {
      // A request that holds the one slot: headers and half a body, then nothing for a while.
      const holder = connect(server.port, '127.0.0.1');
      await new Promise<void>((resolve) => holder.once('connect', resolve));
      holder.write(
        'POST /ingest/trips HTTP/1.1\r\nHost: x\r\nContent-Length: 33\r\n\r\n{"vendorid":1,"trip_distance":1}',
      );
      await new Promise((r) => setTimeout(r, 200));
      const statuses: number[] = [];
      const api = new TinybirdApi({
        baseUrl: server.url,
        token: 'unused',
        fetch: async (input: string | URL | Request, init?: RequestInit) => {
          const res = await fetch(input, init);
          statuses.push(res.status);
          if (res.status === 503) {
            expect(res.headers.get('retry-after')).toBe('1');
            holder.end('\n'); // the held request completes, freeing the slot
          }
          return res;
        },
      } as ConstructorParameters<typeof TinybirdApi>[0]);
      const result = await api.ingestBatch('trips', [{ vendorid: 2, trip_distance: 3 }], {
        maxRetries: 5,
      });
      expect(result).toMatchObject({ successful_rows: 1, quarantined_rows: 0 });
      expect(statuses[0]).toBe(503);
      expect(statuses[statuses.length - 1]).toBe(200);
      holder.destroy();
      await new Promise((r) => setTimeout(r, 100));
      const rows = readFileSync(join(server.csvDir, `trips_typed-${day()}.csv`), 'utf8');
      expect(rows).toBe('vendor,pickup,distance\n1,,1\n2,,3\n');
    } finally {
      await server.stop();
    }
  });
});

describe('locks', () => {
  it("a commit to one dataset never waits for another dataset's lock", async () => {
    const server = await startServer({
      DATASETS_FILE: writeDatasets(DATASETS),
      LOCK_TIMEOUT_MS: '20000',
    });
    // This process holds the trips lock, as a worker stuck in a commit would.
    const lock = openSync(lockFilePath(server.csvDir, 'trips_typed'), 'a+');
    try {
      expect(tryLock(lock)).toBe(true);
      const trip = Buffer.from('{"vendorid":1,"trip_distance":1}\n');
      let tripsDone = false;
      const held = send(`${server.url}/ingest/trips`, trip).then((a) => {
        tripsDone = true;
        return a;
      });
      await new Promise((r) => setTimeout(r, 300));
      const events = await send(`${server.url}/ingest/events`, Buffer.from('{"user":{"id":1}}\n'), {
        headers: { authorization: 'Bearer events-token' },
      });
      expect(events.status).toBe(200);
      expect(tripsDone).toBe(false);
      unlock(lock);
      expect((await held).status).toBe(200);
    } finally {
      closeSync(lock);
      await server.stop();
    }
  });
});

describe('without a datasets file', () => {
  it('names the one dataset after CSV_PREFIX: POST /ingest/nyc_taxi works, others are 404', async () => {
    const server = await startServer({ CSV_EOL: 'lf' });
    try {
      const body = Buffer.from('{"vendorid":2,"trip_distance":0.02}\n');
      expect((await send(`${server.url}/ingest/nyc_taxi`, body)).status).toBe(200);
      expect((await send(`${server.url}/ingest/trips`, body)).status).toBe(404);
      expect(readFileSync(join(server.csvDir, `nyc_taxi-${day()}.csv`), 'utf8')).toBe('2,,0.02,\n');
    } finally {
      await server.stop();
    }
  });
});

describe('a bad datasets file stops start-up, naming the file, the dataset and the field', () => {
  const cases: [string, string, RegExp][] = [
    [
      'unknown type',
      'datasets:\n  t:\n    columns: [{ name: a, type: integer }]\n',
      /dataset "t", columns\[0\] \(a\), type: must be one of/,
    ],
    [
      'bad path',
      'datasets:\n  t:\n    columns: [{ name: a, path: "$.a[01]" }]\n',
      /dataset "t", columns\[0\] \(a\), path: "\$\.a\[01\]" is not a path/,
    ],
    [
      'default of another type',
      'datasets:\n  t:\n    columns: [{ name: a, type: int, default: "x" }]\n',
      /dataset "t", columns\[0\] \(a\), default: "x" is not accepted by type int/,
    ],
    [
      'int default for a string',
      'datasets:\n  t:\n    columns: [{ name: a, type: string, default: 3 }]\n',
      /columns\[0\] \(a\), default: 3 is not accepted by type string/,
    ],
    [
      'meta with a type',
      'datasets:\n  t:\n    columns: [{ name: a, meta: line, type: int }]\n',
      /columns\[0\] \(a\), type: a meta column has no path/,
    ],
    ['unknown key', 'datasets:\n  t:\n    colums: []\n', /dataset "t", colums: unknown key/],
    [
      'shared prefix',
      'datasets:\n  a:\n    prefix: p\n    columns: [{ name: x }]\n  b:\n    prefix: p\n    columns: [{ name: x }]\n',
      /dataset "b", prefix: "p" is also the prefix of dataset "a"/,
    ],
    [
      'bad dataset name',
      'datasets:\n  Trips:\n    columns: [{ name: x }]\n',
      /dataset "Trips": the name must match/,
    ],
    [
      'duplicate column',
      'datasets:\n  t:\n    columns: [{ name: x }, { name: x, path: $.y }]\n',
      /columns\[1\], name: "x" is used twice/,
    ],
    [
      'unknown default dataset',
      'default: nope\ndatasets:\n  t:\n    columns: [{ name: x }]\n',
      /default: must name one of the datasets/,
    ],
    [
      'no columns',
      'datasets:\n  t:\n    columns: []\n',
      /dataset "t", columns: must be a list of at least one column/,
    ],
    ['not YAML', 'datasets: [\n', /line \d+, column \d+: not valid YAML/],
  ];
  it.each(cases)('%s', async (_name, text, message) => {
    const file = writeDatasets(text);
    const proc = spawn(process.execPath, [MAIN], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH,
        DATASETS_FILE: file,
        PORT: '0',
        HOST: '127.0.0.1',
        CSV_DIR: tempDir(),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => proc.once('exit', resolve));
    expect(code).not.toBe(0);
    expect(out).toContain(`DATASETS_FILE ${file}`);
    expect(out).toMatch(message);
  });

  it('and `npm run datasets -- check` says the same without starting anything', async () => {
    const file = writeDatasets(cases[0][1]);
    const proc = spawn(
      process.execPath,
      [
        '--no-warnings',
        '--import',
        '@swc-node/register/esm-register',
        'src/datasets/cli.ts',
        'check',
        file,
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => proc.once('exit', resolve));
    expect(code).toBe(1);
    expect(out).toMatch(cases[0][2]);
    expect(existsSync(file)).toBe(true);
  });
});
