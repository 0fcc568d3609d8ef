/**
 * Requests on a connection the server is closing are never committed (issue 13, item 4; RFC 9112
 * §9.6), and the HTTP edges answer in the error shape with the right status (item 10). Raw
 * sockets, because node:http does not pipeline, linger or leave out Host.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync, brotliCompressSync } from 'node:zlib';
import { localDay } from '../../src/csv/csv-committer.js';
import { send, startServer, type RunningServer } from '../support/server.js';
import { rawJson, rawPost, rawSession } from '../support/raw-http.js';

const TOKEN = 'gate-token';

function csvText(s: RunningServer): string {
  const p = join(s.csvDir, `nyc_taxi-${localDay(new Date())}.csv`);
  return existsSync(p) ? readFileSync(p, 'utf8') : '';
}

function quarantineText(s: RunningServer): string {
  const p = join(s.csvDir, `nyc_taxi-${localDay(new Date())}.quarantine.ndjson`);
  return existsSync(p) ? readFileSync(p, 'utf8') : '';
}

/** A valid one-record body whose row names the test, so a stray commit is easy to see. */
const record = (tag: string): string => `{"vendorid":"${tag}"}\n`;

describe('no request is committed on a connection that is closing', () => {
  let s: RunningServer;
  beforeAll(async () => {
    s = await startServer({ LOG_LEVEL: 'info' });
  });
  afterAll(async () => {
    await s.stop();
  });

  it('a POST sent during the linger after a 415 is neither committed nor answered', async () => {
    // The client goes on sending the body it began, then, 500 ms later, sends another request.
    const body = 'x'.repeat(100000);
    const first = rawPost(body, { headers: { 'Content-Encoding': 'foo' } });
    const r = await rawSession(s.port, [
      first.subarray(0, first.length - body.length + 1000),
      { until: /HTTP\/1\.1 415 / },
      first.subarray(first.length - body.length + 1000),
      { pauseMs: 500 },
      rawPost(record('linger')),
    ]);
    expect(r.statuses).toEqual([415]);
    expect(r.text).toMatch(/connection: close/i);
    expect(csvText(s)).not.toContain('linger');
  });

  it.each([
    ['a 415', rawPost('{}\n', { headers: { 'Content-Encoding': 'foo' } }), 415],
    ['a 404 with a body', rawPost('{}\n', { path: '/nope' }), 404],
  ])('a valid POST pipelined after %s is not committed', async (_name, first, status) => {
    const tag = `pipelined-${status}`;
    const r = await rawSession(s.port, [Buffer.concat([first, rawPost(record(tag))])]);
    expect(r.statuses[0]).toBe(status);
    expect(r.statuses).toHaveLength(1);
    // Let a commit that should not happen have its chance.
    await new Promise((ok) => setTimeout(ok, 200));
    expect(csvText(s)).not.toContain(tag);
  });

  it('a valid POST pipelined after "Connection: close" is not committed', async () => {
    const r = await rawSession(s.port, [
      Buffer.concat([
        rawPost(record('closer'), { headers: { Connection: 'close' } }),
        rawPost(record('after-closer')),
      ]),
    ]);
    expect(r.statuses).toEqual([200]);
    await new Promise((ok) => setTimeout(ok, 200));
    const csv = csvText(s);
    expect(csv).toContain('closer,,,');
    expect(csv).not.toContain('after-closer');
  });

  it('a body followed by bytes that do not parse is not committed: the 400 says nothing was written', async () => {
    const beforeQ = quarantineText(s);
    const r = await rawSession(s.port, [
      Buffer.concat([rawPost('{"a":'), Buffer.from('JUNK JUNK\r\n\r\n')]),
    ]);
    expect(r.statuses).toEqual([400]);
    expect(rawJson(r.text).result.error.code).toBe('bad_request');
    const r2 = await rawSession(s.port, [
      Buffer.concat([rawPost(record('before-junk')), Buffer.from('\x01\x02 JUNK\r\n\r\n')]),
    ]);
    expect(r2.statuses).toEqual([400]);
    await new Promise((ok) => setTimeout(ok, 200));
    expect(quarantineText(s)).toBe(beforeQ);
    expect(csvText(s)).not.toContain('before-junk');
  });

  it('pipelined requests on a healthy connection are all committed and answered in order', async () => {
    const r = await rawSession(s.port, [
      Buffer.concat([
        rawPost(record('pipe-1')),
        rawPost(record('pipe-2')),
        rawPost(record('pipe-3')),
      ]),
      { until: /(HTTP\/1\.1 200 [\s\S]*){3}/ },
    ]);
    expect(r.statuses).toEqual([200, 200, 200]);
    const csv = csvText(s);
    expect(csv.indexOf('pipe-1')).toBeLessThan(csv.indexOf('pipe-2'));
    expect(csv.indexOf('pipe-2')).toBeLessThan(csv.indexOf('pipe-3'));
  });

  it('a failure is logged with its code and the bytes received', async () => {
    await rawSession(s.port, [
      `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n${'{"vendorid":1}\n'.repeat(10)}`,
      { pauseMs: 100 },
    ]);
    // The session closed the socket mid-body: client_aborted, with the 150 bytes it had sent.
    const deadline = Date.now() + 5000;
    let line: string | undefined;
    while (line === undefined && Date.now() < deadline) {
      await new Promise((ok) => setTimeout(ok, 100));
      line = s
        .output()
        .split('\n')
        .find((l) => l.includes('"code":"client_aborted"') && l.includes('"bytes":150'));
    }
    expect(line).toBeDefined();
    const entry = JSON.parse(line!) as { status: number; bytes: number; code: string };
    expect(entry.status).toBe(400);
    expect(entry.bytes).toBe(150);
  });
});

describe('HTTP edges answer in the error shape', () => {
  let s: RunningServer;
  beforeAll(async () => {
    s = await startServer({ INGEST_TOKENS: TOKEN });
  });
  afterAll(async () => {
    await s.stop();
  });
  const auth = `Bearer ${TOKEN}`;

  it('405 with Allow for a known route and another method; 404 for an unknown one', async () => {
    const get = await send(`${s.url}/`, null, { method: 'GET' });
    expect(get.status).toBe(405);
    expect(get.headers.allow).toBe('POST');
    expect(get.json.result.error.code).toBe('method_not_allowed');
    const post = await send(`${s.url}/metrics`, Buffer.from('x'), { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
    expect((await send(`${s.url}/nope`, null, { method: 'GET' })).status).toBe(404);
  });

  it('a 404 or 405 to a GET keeps the connection open', async () => {
    const get = (path: string) => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`;
    const r = await rawSession(s.port, [get('/nope') + get('/') + get('/health/live')]);
    expect(r.statuses).toEqual([404, 405, 200]);
    expect(r.text).not.toMatch(/connection: close/i);
  });

  it('a POST without Host is 400 in the error shape', async () => {
    const r = await rawSession(s.port, [
      `POST / HTTP/1.1\r\nAuthorization: ${auth}\r\nContent-Length: 3\r\n\r\n{}\n`,
    ]);
    expect(r.statuses).toEqual([400]);
    expect(rawJson(r.text).result.error.code).toBe('bad_request');
    expect(rawJson(r.text).result.error.message).toMatch(/Host/);
  });

  it('HTTP/1.0 without Host is served', async () => {
    const r = await rawSession(s.port, [
      `POST / HTTP/1.0\r\nAuthorization: ${auth}\r\nContent-Length: 21\r\n\r\n${record('http10')}`,
    ]);
    expect(r.statuses).toEqual([200]);
  });

  it('Expect other than 100-continue is 417 in the error shape', async () => {
    const a = await send(`${s.url}/`, Buffer.from(record('x')), {
      headers: { expect: 'foo', authorization: auth },
    });
    expect(a.status).toBe(417);
    expect(a.json.result.error.code).toBe('expectation_failed');
  });

  it('Expect: 100-continue is refused before 100 when the token is missing, and no body is read', async () => {
    const r = await rawSession(s.port, [
      'POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 21\r\n\r\n',
      { until: /HTTP\/1\.1 \d{3} / },
    ]);
    expect(r.statuses).toEqual([401]);
    expect(r.text).toMatch(/www-authenticate: Bearer/i);
  });

  it('Expect: 100-continue with an encoding or length that will be refused: no 100', async () => {
    const head = (h: string) =>
      `POST / HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\nExpect: 100-continue\r\n${h}\r\n`;
    const enc = await rawSession(s.port, [
      head('Content-Encoding: foo\r\nContent-Length: 3\r\n'),
      { until: /HTTP\/1\.1 \d{3} / },
    ]);
    expect(enc.statuses).toEqual([415]);
    const big = await rawSession(s.port, [
      head('Content-Length: 999999999999\r\n'),
      { until: /HTTP\/1\.1 \d{3} / },
    ]);
    expect(big.statuses).toEqual([413]);
  });

  it('Expect: 100-continue that is admitted gets 100, then its 200', async () => {
    const body = record('continued');
    const r = await rawSession(s.port, [
      `POST /ingest HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\nExpect: 100-continue\r\nContent-Length: ${body.length}\r\n\r\n`,
      { until: /HTTP\/1\.1 100 / },
      body,
      { until: /HTTP\/1\.1 200 / },
    ]);
    expect(r.statuses).toEqual([100, 200]);
    expect(rawJson(r.text, 1).result.stats.records.valid).toBe(1);
    expect(csvText(s)).toContain('continued,,,');
  });

  it('Transfer-Encoding other than chunked alone is 501, nothing written', async () => {
    const gz = gzipSync(record('te-gzip'));
    const r = await rawSession(s.port, [
      Buffer.concat([
        Buffer.from(
          `POST / HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n${gz.length.toString(16)}\r\n`,
        ),
        gz,
        Buffer.from('\r\n0\r\n\r\n'),
      ]),
    ]);
    expect(r.statuses).toEqual([501]);
    expect(rawJson(r.text).result.error.code).toBe('not_implemented');
    expect(csvText(s)).not.toContain('te-gzip');
  });

  it('401 names the Bearer scheme', async () => {
    const a = await send(`${s.url}/`, Buffer.from('{}\n'));
    expect(a.status).toBe(401);
    expect(a.headers['www-authenticate']).toMatch(/^Bearer /);
  });

  it.each([
    ['identity', undefined],
    ['gzip', 'gzip'],
    ['br', 'br'],
    ['deflate', 'deflate'],
    ['zstd', 'zstd'],
  ])('an empty body is 200 with no records (%s)', async (_name, encoding) => {
    const headers: Record<string, string> = { authorization: auth };
    if (encoding !== undefined) headers['content-encoding'] = encoding;
    const a = await send(`${s.url}/`, Buffer.alloc(0), { headers });
    expect(a.status).toBe(200);
    expect(a.json.result.stats.records.total).toBe(0);
  });

  it('compressed empty input is 200 with no records too', async () => {
    for (const [encoding, body] of [
      ['gzip', gzipSync(Buffer.alloc(0))],
      ['br', brotliCompressSync(Buffer.alloc(0))],
    ] as const) {
      const a = await send(`${s.url}/`, body, {
        headers: { authorization: auth, 'content-encoding': encoding },
      });
      expect(a.status).toBe(200);
      expect(a.json.result.stats.records.total).toBe(0);
    }
  });
});
