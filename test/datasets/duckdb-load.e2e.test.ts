/**
 * The day files of typed datasets load into DuckDB with the statements `npm run datasets -- ddl`
 * prints: every row comes back, each value with its declared type (SPEC §8).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { ROOT, send, startServer, tempDir, type RunningServer } from '../support/server.js';

const DATASETS = `
datasets:
  typed:
    header: true
    columns:
      - { name: i, path: $.i, type: int }
      - { name: f, path: $.f, type: float }
      - { name: b, path: $.b, type: bool, default: false }
      - { name: d, path: $.d, type: date }
      - { name: ts, path: $.ts, type: datetime }
      - { name: s, path: $.s, type: string }
      - { name: j, path: $.nested.j }
      - { name: rid, meta: request_id }
      - { name: at, meta: received_at }
      - { name: n, meta: line }
  plain:
    eol: lf
    columns:
      - { name: "v", path: '$["odd key"][1]', type: int, nullable: false }
      - { name: w, path: $.w, type: string }
`;

describe('DuckDB loads the day files with the printed DDL', () => {
  let server: RunningServer;
  let file: string;

  beforeAll(async () => {
    file = join(tempDir('duckdb-'), 'datasets.yaml');
    writeFileSync(file, DATASETS);
    server = await startServer({ DATASETS_FILE: file });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('gives every row back with its type and value', async () => {
    const typed = [
      {
        i: -9223372036854775808n,
        f: 1e308,
        b: true,
        d: '0001-01-01',
        ts: '2016-12-31T23:30:00.123456789-01:00',
        s: 'a,"b"\nc',
        nested: { j: { k: [1] } },
      },
      { i: 42, f: -0.5, d: '2024-02-29', ts: 253402300799, s: 'café' },
      {
        i: 9223372036854775807n,
        f: 12345678901234567890n,
        b: false,
        ts: '2026-12-06 01:02:03Z',
        s: '',
      },
    ];
    const body = typed
      .map((r) =>
        JSON.stringify(r, (_k, v: unknown) => (typeof v === 'bigint' ? `@@${v}@@` : v)).replace(
          /"@@(-?\d+)@@"/g,
          '$1',
        ),
      )
      .join('\n');
    const a = await send(`${server.url}/ingest/typed`, Buffer.from(body + '\n'));
    expect(a.json.result.stats.records).toEqual({ valid: 3, invalid: 0, total: 3 });
    // A second request appends under the same header.
    const b = await send(`${server.url}/ingest/typed`, Buffer.from('{"i":1}\n'));
    expect(b.status).toBe(200);
    const p = await send(
      `${server.url}/ingest/plain`,
      Buffer.from('{"odd key":[0,5],"w":"x"}\n{"odd key":[0,-6]}\n'),
    );
    expect(p.json.result.stats.records.valid).toBe(2);

    const sql = execFileSync(
      process.execPath,
      [
        '--no-warnings',
        '--import',
        '@swc-node/register/esm-register',
        'src/datasets/cli.ts',
        'ddl',
        file,
        '--dialect',
        'duckdb',
        '--dir',
        server.csvDir,
      ],
      { cwd: ROOT, encoding: 'utf8' },
    );
    const db = await DuckDBInstance.create(':memory:');
    const c = await db.connect();
    for (const statement of sql.split(';\n').filter((s) => s.trim() !== '')) await c.run(statement);

    const types = await c.runAndReadAll(
      "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'typed' ORDER BY ordinal_position",
    );
    expect(types.getRows()).toEqual([
      ['i', 'BIGINT'],
      ['f', 'DOUBLE'],
      ['b', 'BOOLEAN'],
      ['d', 'DATE'],
      ['ts', 'TIMESTAMP'],
      ['s', 'VARCHAR'],
      ['j', 'VARCHAR'],
      ['rid', 'VARCHAR'],
      ['at', 'TIMESTAMP'],
      ['n', 'BIGINT'],
    ]);
    // DuckDB's TIMESTAMP keeps microseconds: the cell's 9 digits lose their last 3 on load.
    const rows = await c.runAndReadAll(
      'SELECT i, f, b, CAST(d AS VARCHAR), CAST(ts AS VARCHAR), s, j, rid, n, "at" BETWEEN now()::TIMESTAMP - INTERVAL 1 HOUR AND now()::TIMESTAMP + INTERVAL 1 HOUR FROM typed ORDER BY rid, n',
    );
    const rid1 = a.json.result.request_id;
    const rid2 = b.json.result.request_id;
    const got = rows.getRows();
    const want = [
      [
        -9223372036854775808n,
        1e308,
        true,
        '0001-01-01',
        '2017-01-01 00:30:00.123456',
        'a,"b"\nc',
        '{"k":[1]}',
        rid1,
        1n,
        true,
      ],
      [42n, -0.5, false, '2024-02-29', '9999-12-31 23:59:59', 'café', null, rid1, 2n, true],
      [
        9223372036854775807n,
        Number('12345678901234567890'),
        false,
        null,
        '2026-12-06 01:02:03',
        null,
        null,
        rid1,
        3n,
        true,
      ],
      [1n, null, false, null, null, null, null, rid2, 1n, true],
    ];
    const byRid = (r: unknown[]) => (r[7] === rid1 ? 0 : 1);
    expect(got.sort((x, y) => byRid(x) - byRid(y) || Number(x[8]) - Number(y[8]))).toEqual(want);
    const plain = await c.runAndReadAll('SELECT v, w FROM plain ORDER BY v');
    expect(plain.getRows()).toEqual([
      [-6n, null],
      [5n, 'x'],
    ]);
  });
});
