/**
 * The ingest routes end to end (SPEC §3): the real server on 127.0.0.1, real HTTP, real files.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { brotliCompressSync, deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import { parse } from 'csv-parse/sync';
import { localDay } from '../../src/csv/csv-committer.js';
import { startServer, send, type RunningServer } from '../support/server.js';
import { taxiBody } from '../support/taxi.js';

const TOKEN = 's3cret-token';

function csvPath(s: RunningServer): string {
  return join(s.csvDir, `nyc_taxi-${localDay(new Date())}.csv`);
}

function csvText(s: RunningServer): string {
  const p = csvPath(s);
  return existsSync(p) ? readFileSync(p, 'utf8') : '';
}

function quarantineLines(s: RunningServer): Record<string, unknown>[] {
  const p = join(s.csvDir, `nyc_taxi-${localDay(new Date())}.quarantine.ndjson`);
  if (!existsSync(p)) return [];
  return readFileSync(p, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

function expectErrorShape(a: { status: number; json: unknown }, status: number, code: string) {
  expect(a.status).toBe(status);
  const result = (a.json as { result: Record<string, unknown> }).result;
  expect(result.status).toBe('error');
  expect((result.error as { code: string }).code).toBe(code);
  expect(typeof (result.error as { message: string }).message).toBe('string');
  expect(typeof result.request_id).toBe('string');
  expect((result.request_id as string).length).toBeGreaterThan(0);
}

describe('ingest over HTTP (single process)', () => {
  let s: RunningServer;
  const body = taxiBody(200, 7);

  beforeAll(async () => {
    s = await startServer({ MAX_BODY_BYTES: String(1 << 20), MAX_DECODED_BYTES: String(4 << 20) });
  });
  afterAll(async () => {
    // Nest re-raises the signal after its graceful close.
    expect(await s.stop()).toBe('SIGTERM');
  });

  it('answers the seed-compatible shape and writes one row per record', async () => {
    const before = csvText(s).length;
    const a = await send(`${s.url}/`, body, {
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(a.status).toBe(200);
    expect(a.json.result.status).toBe('ok');
    expect(a.json.result.stats).toEqual({
      bytes: body.length,
      records: { valid: 200, invalid: 0, total: 200 },
    });
    expect(a.json.result.request_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(a.headers['x-request-id']).toBe(a.json.result.request_id);
    expect(a.json.result.errors).toBeUndefined();
    const added = csvText(s).slice(before);
    const rows = parse(added, { relax_column_count: false }) as string[][];
    expect(rows).toHaveLength(200);
    const first = JSON.parse(body.toString().split('\n')[0]) as Record<string, unknown>;
    expect(rows[0]).toEqual([
      String(first.vendorid),
      String(first.tpep_pickup_datetime),
      String(first.trip_distance),
      String(first.total_amount),
    ]);
    expect(added.endsWith('\r\n')).toBe(true);
  });

  it.each([
    ['text/plain'],
    ['application/json'],
    ['application/x-ndjson'],
    ['application/octet-stream'],
  ])('accepts Content-Type %s on /ingest', async (type) => {
    const a = await send(`${s.url}/ingest`, body, { headers: { 'content-type': type } });
    expect(a.status).toBe(200);
    expect(a.json.result.stats.records.valid).toBe(200);
  });

  it('accepts a body without Content-Type', async () => {
    const a = await send(`${s.url}/ingest`, body);
    expect(a.status).toBe(200);
    expect(a.json.result.stats.records.valid).toBe(200);
  });

  it('accepts Transfer-Encoding: chunked, split anywhere', async () => {
    const chunks = [body.subarray(0, 1), body.subarray(1, 1000), body.subarray(1000)];
    const a = await send(`${s.url}/ingest`, body, { chunks });
    expect(a.status).toBe(200);
    expect(a.json.result.stats.bytes).toBe(body.length);
    expect(a.json.result.stats.records.valid).toBe(200);
  });

  it.each([
    ['gzip', gzipSync],
    ['x-gzip', gzipSync],
    ['deflate', deflateSync],
    ['deflate', deflateRawSync],
    ['br', brotliCompressSync],
  ])('decodes Content-Encoding %s (%p)', async (encoding, compress) => {
    const packed = compress(body);
    const a = await send(`${s.url}/ingest`, packed, { headers: { 'content-encoding': encoding } });
    expect(a.status).toBe(200);
    expect(a.json.result.stats.bytes).toBe(packed.length);
    expect(a.json.result.stats.records.valid).toBe(200);
  });

  it('decodes Content-Encoding zstd (compressed by the zstd CLI)', async () => {
    // CI installs Debian's zstd; Node 20's zlib has no zstd encoder to make one here.
    const packed = execFileSync('zstd', ['-c', '-q', '-3'], { input: body });
    const a = await send(`${s.url}/ingest`, packed, { headers: { 'content-encoding': 'zstd' } });
    expect(a.status).toBe(200);
    expect(a.json.result.stats.bytes).toBe(packed.length);
    expect(a.json.result.stats.records.valid).toBe(200);
  });

  it('decodes Content-Encoding zstd (stored blocks)', async () => {
    const packed = zstdRawFrame(body);
    const a = await send(`${s.url}/ingest`, packed, { headers: { 'content-encoding': 'zstd' } });
    expect(a.status).toBe(200);
    expect(a.json.result.stats.records.valid).toBe(200);
  });

  it('reports invalid lines (first 10), counts them and quarantines them', async () => {
    const lines: string[] = [];
    for (let i = 0; i < 15; i++) lines.push(i % 2 === 0 ? 'not json' : '{"vendorid":1}');
    lines.push('[1,2]');
    const text = lines.join('\n') + '\n';
    const before = quarantineLines(s).length;
    const a = await send(`${s.url}/ingest`, Buffer.from(text));
    expect(a.status).toBe(200);
    expect(a.json.result.stats.records).toEqual({ valid: 7, invalid: 9, total: 16 });
    const errors = a.json.result.errors as { line: number; error: string; message: string }[];
    expect(errors).toHaveLength(9);
    expect(errors[0]).toMatchObject({ line: 1, error: 'invalid_json' });
    expect(errors[8]).toMatchObject({ line: 16, error: 'not_object' });
    const q = quarantineLines(s).slice(before);
    expect(q).toHaveLength(9);
    expect(q[0]).toEqual({
      request_id: a.json.result.request_id,
      line: 1,
      error: 'invalid_json',
      raw: 'not json',
    });
    expect(q[8]).toMatchObject({ line: 16, raw: '[1,2]' });
  });

  it('lists at most 10 errors', async () => {
    const text = Array.from({ length: 25 }, () => '{bad').join('\n');
    const a = await send(`${s.url}/ingest`, Buffer.from(text));
    expect(a.json.result.stats.records.invalid).toBe(25);
    expect(a.json.result.errors).toHaveLength(10);
    expect(a.json.result.errors[9].line).toBe(10);
  });

  it('quarantines a line that is not UTF-8 as raw_base64', async () => {
    const raw = Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]);
    const before = quarantineLines(s).length;
    const a = await send(`${s.url}/ingest`, raw);
    expect(a.json.result.errors[0]).toMatchObject({ line: 1, error: 'invalid_utf8' });
    const q = quarantineLines(s).slice(before);
    expect(q).toEqual([
      {
        request_id: a.json.result.request_id,
        line: 1,
        error: 'invalid_utf8',
        raw_base64: raw.toString('base64'),
      },
    ]);
  });

  it('keeps a plain client X-Request-Id', async () => {
    const a = await send(`${s.url}/ingest`, Buffer.from('{}\n'), {
      headers: { 'x-request-id': 'client-42' },
    });
    expect(a.json.result.request_id).toBe('client-42');
  });

  it('415 for an unsupported Content-Encoding, and writes nothing', async () => {
    const before = csvText(s);
    const a = await send(`${s.url}/ingest`, body, { headers: { 'content-encoding': 'compress' } });
    expectErrorShape(a, 415, 'unsupported_encoding');
    expect(csvText(s)).toBe(before);
  });

  it('400 for a corrupt gzip body, and writes nothing', async () => {
    const before = csvText(s);
    const packed = gzipSync(body);
    packed[packed.length >> 1] ^= 0xff;
    const a = await send(`${s.url}/ingest`, packed, { headers: { 'content-encoding': 'gzip' } });
    expectErrorShape(a, 400, 'corrupt_body');
    expect(csvText(s)).toBe(before);
  });

  it('400 for a truncated gzip body, and writes nothing', async () => {
    const before = csvText(s);
    const packed = gzipSync(body).subarray(0, 200);
    const a = await send(`${s.url}/ingest`, packed, { headers: { 'content-encoding': 'gzip' } });
    expectErrorShape(a, 400, 'corrupt_body');
    expect(csvText(s)).toBe(before);
  });

  it('413 from Content-Length before reading, answer seen by the client', async () => {
    const big = Buffer.alloc(2 << 20, 0x20);
    const a = await send(`${s.url}/ingest`, big);
    expectErrorShape(a, 413, 'body_too_large');
    expect(a.headers.connection).toBe('close');
  });

  it('413 for a chunked body that grows past MAX_BODY_BYTES, and writes nothing', async () => {
    const before = csvText(s);
    const piece = taxiBody(3000, 3); // > 1 MiB
    const chunks: Buffer[] = [];
    for (let i = 0; i < piece.length; i += 65536) chunks.push(piece.subarray(i, i + 65536));
    const a = await send(`${s.url}/ingest`, piece, { chunks });
    expectErrorShape(a, 413, 'body_too_large');
    expect(csvText(s)).toBe(before);
  });

  it('413 when the decoded body passes MAX_DECODED_BYTES (a gzip bomb), and writes nothing', async () => {
    const before = csvText(s);
    const bomb = gzipSync(Buffer.alloc(16 << 20, 0x20)); // 16 MiB of spaces, a few KiB packed
    expect(bomb.length).toBeLessThan(1 << 20);
    const a = await send(`${s.url}/ingest`, bomb, { headers: { 'content-encoding': 'gzip' } });
    expectErrorShape(a, 413, 'decoded_body_too_large');
    expect(csvText(s)).toBe(before);
  });

  it('404 in the error shape for an unknown route', async () => {
    const a = await send(`${s.url}/nope`, null, { method: 'GET' });
    expectErrorShape(a, 404, 'not_found');
  });

  it('400 in the error shape for a malformed request line (before routing)', async () => {
    const text = await rawExchange(s.port, 'BROKEN\r\n\r\n');
    expect(text).toMatch(/^HTTP\/1\.1 400 /);
    const json = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as {
      result: { status: string; request_id: string; error: { code: string } };
    };
    expect(json.result.status).toBe('error');
    expect(json.result.error.code).toBe('bad_request');
    expect(json.result.request_id.length).toBeGreaterThan(0);
  });

  it('a client that aborts its body halfway leaves nothing written', async () => {
    const before = csvText(s);
    const beforeQ = quarantineLines(s).length;
    await new Promise<void>((resolve) => {
      const req = request(`${s.url}/ingest`, {
        method: 'POST',
        headers: { 'content-length': body.length },
      });
      req.on('error', () => resolve());
      req.write(body.subarray(0, body.length >> 1), () => {
        setTimeout(() => {
          req.destroy();
          resolve();
        }, 100);
      });
    });
    // The server must also go on serving.
    const a = await send(`${s.url}/ingest`, Buffer.from('{"vendorid":"after-abort"}\n'));
    expect(a.status).toBe(200);
    const added = csvText(s).slice(before.length);
    expect(added).toBe('after-abort,,,\r\n');
    expect(quarantineLines(s).length).toBe(beforeQ);
  });

  it('concurrent requests are committed whole, never interleaved', async () => {
    const before = csvText(s).length;
    const n = 40;
    const bodies = Array.from({ length: n }, (_, r) =>
      Buffer.from(
        Array.from(
          { length: 50 + r * 7 },
          (_, i) => `{"vendorid":"r${r}","trip_distance":${i}}`,
        ).join('\n'),
      ),
    );
    const answers = await Promise.all(
      bodies.map((b, r) =>
        send(`${s.url}/ingest`, b, {
          chunks: [b.subarray(0, b.length >> 1), b.subarray(b.length >> 1)],
          headers: { 'x-request-id': `r${r}` },
        }),
      ),
    );
    for (const a of answers) expect(a.status).toBe(200);
    const rows = parse(csvText(s).slice(before)) as string[][];
    expect(rows.length).toBe(bodies.reduce((sum, _, r) => sum + 50 + r * 7, 0));
    // Each request's rows form one contiguous run, in input order.
    let i = 0;
    const seen = new Set<string>();
    while (i < rows.length) {
      const tag = rows[i][0];
      expect(seen.has(tag)).toBe(false);
      seen.add(tag);
      const count = 50 + Number(tag.slice(1)) * 7;
      for (let k = 0; k < count; k++) expect(rows[i + k]).toEqual([tag, '', String(k), '']);
      i += count;
    }
    expect(seen.size).toBe(n);
  });

  it('the CSV folder holds no temporary files after the requests', () => {
    const left = readdirSync(s.csvDir).filter((f) => f.includes('spill') || f.endsWith('.tmp'));
    expect(left).toEqual([]);
  });
});

describe('authentication and timeouts', () => {
  let s: RunningServer;

  beforeAll(async () => {
    s = await startServer({ INGEST_TOKENS: `other,${TOKEN}`, BODY_TIMEOUT_MS: '300' });
  });
  afterAll(async () => {
    await s.stop();
  });

  it('401 without a token, answer delivered even while the client keeps sending', async () => {
    const a = await send(`${s.url}/ingest`, taxiBody(3000, 1));
    expectErrorShape(a, 401, 'unauthorized');
  });

  it('401 with a wrong token', async () => {
    const a = await send(`${s.url}/ingest`, Buffer.from('{}\n'), {
      headers: { authorization: 'Bearer nope' },
    });
    expectErrorShape(a, 401, 'unauthorized');
  });

  it('200 with any configured token', async () => {
    const a = await send(`${s.url}/ingest`, Buffer.from('{"vendorid":1}\n'), {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(a.status).toBe(200);
    expect(a.json.result.stats.records.valid).toBe(1);
  });

  it('408 when the body stalls longer than BODY_TIMEOUT_MS, and writes nothing', async () => {
    const text = await new Promise<string>((resolve, reject) => {
      const sock = connect(s.port, '127.0.0.1', () => {
        sock.write(
          `POST /ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\n` +
            'Content-Length: 100\r\n\r\n{"vendorid":"stalled"}\n',
        );
      });
      let out = '';
      sock.on('data', (d) => (out += d.toString()));
      sock.on('close', () => resolve(out));
      sock.on('error', reject);
    });
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
    expect(text).toContain('"code":"body_timeout"');
    expect(csvText(s)).not.toContain('stalled');
  });
});

describe('configuration', () => {
  it('refuses to start with a bad variable and names it', async () => {
    await expect(startServer({ CSV_EOL: 'cr' })).rejects.toThrow(/CSV_EOL/);
    await expect(startServer({ PORT: 'eighty' })).rejects.toThrow(/PORT/);
    await expect(startServer({ CSV_FSYNC: 'maybe' })).rejects.toThrow(/CSV_FSYNC/);
  });

  it('CSV_EOL=lf, CSV_COLUMNS and CSV_PREFIX shape the output', async () => {
    const s = await startServer({ CSV_EOL: 'lf', CSV_COLUMNS: 'b,a', CSV_PREFIX: 'events' });
    try {
      const a = await send(`${s.url}/`, Buffer.from('{"a":1,"b":"x,y"}\n{"a":true}\n'));
      expect(a.status).toBe(200);
      const file = join(s.csvDir, `events-${localDay(new Date())}.csv`);
      expect(readFileSync(file, 'utf8')).toBe('"x,y",1\n,true\n');
    } finally {
      await s.stop();
    }
  });

  it('CSV_FSYNC=true still answers and writes', async () => {
    const s = await startServer({ CSV_FSYNC: 'true' });
    try {
      const answers = await Promise.all(
        Array.from({ length: 20 }, (_, i) => send(`${s.url}/`, Buffer.from(`{"vendorid":${i}}\n`))),
      );
      for (const a of answers) expect(a.status).toBe(200);
      expect(
        csvText(s)
          .split('\r\n')
          .filter((l) => l !== ''),
      ).toHaveLength(20);
    } finally {
      await s.stop();
    }
  });
});

/** Sends raw bytes on a socket and returns everything the server answers until it closes. */
function rawExchange(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1', () => sock.write(text));
    let out = '';
    sock.on('data', (d) => (out += d.toString()));
    sock.on('close', () => resolve(out));
    sock.on('error', reject);
  });
}

/**
 * A zstd frame (RFC 8878) holding `data` in raw (stored) blocks: magic, a frame header with
 * Single_Segment and a 4-byte content size, then blocks of ≤ 128 KiB.
 */
function zstdRawFrame(data: Buffer): Buffer {
  const parts: Buffer[] = [];
  const header = Buffer.alloc(9);
  header.writeUInt32LE(0xfd2fb528, 0);
  header[4] = 0b10100000; // FCS 4 bytes, single segment
  header.writeUInt32LE(data.length, 5);
  parts.push(header);
  const MAX = 128 * 1024;
  for (let off = 0; off < data.length || off === 0; off += MAX) {
    const piece = data.subarray(off, Math.min(off + MAX, data.length));
    const last = off + MAX >= data.length ? 1 : 0;
    const bh = (piece.length << 3) | (0 << 1) | last; // block type 0 = raw
    parts.push(Buffer.from([bh & 0xff, (bh >> 8) & 0xff, (bh >> 16) & 0xff]), piece);
    if (data.length === 0) break;
  }
  return Buffer.concat(parts);
}
