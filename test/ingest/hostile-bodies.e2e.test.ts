/**
 * Hostile compressed bodies against the real server (issue 13, items 1–3): a few bytes must not
 * stall or bloat a worker, and nothing a client sent is dropped with a 200.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { brotliCompressSync, constants, deflateSync } from 'node:zlib';
import { localDay } from '../../src/csv/csv-committer.js';
import { send, startServer, type RunningServer } from '../support/server.js';

function csvText(s: RunningServer): string {
  const p = join(s.csvDir, `nyc_taxi-${localDay(new Date())}.csv`);
  return existsSync(p) ? readFileSync(p, 'utf8') : '';
}

function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

const br = (text: string, lgwin: number): Buffer =>
  brotliCompressSync(Buffer.from(text), { params: { [constants.BROTLI_PARAM_LGWIN]: lgwin } });

describe('hostile compressed bodies', () => {
  let s: RunningServer;
  beforeAll(async () => {
    // Room for two 4 MiB brotli windows, not three.
    s = await startServer({ DECODER_MEMORY_BYTES: String(10 << 20) });
  });
  afterAll(async () => {
    await s.stop();
  });

  it('the 46-byte zstd window bomb is 413 at once; the worker stays small and live', async () => {
    const bomb = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xa7]);
    const blocks = Array.from({ length: 10 }, (_, b) => {
      const h = (1 << 3) | (1 << 1) | (b === 9 ? 1 : 0);
      return Buffer.from([h & 0xff, (h >> 8) & 0xff, (h >> 16) & 0xff, 0x61]);
    });
    const body = Buffer.concat([bomb, ...blocks]);
    expect(body.length).toBe(46);
    const rss = rssOf(s.proc.pid!);
    const [a, live] = await Promise.all([
      send(`${s.url}/`, body, { headers: { 'content-encoding': 'zstd' } }),
      send(`${s.url}/health/live`, null, { method: 'GET' }),
    ]);
    expect(a.status).toBe(413);
    expect(a.json.result.error.code).toBe('window_too_large');
    expect(live.status).toBe(200);
    expect(rssOf(s.proc.pid!) - rss).toBeLessThan(64 << 20);
  });

  it('a br stream with a 16 MiB window is 413 before decoding', async () => {
    const a = await send(`${s.url}/`, br('{"vendorid":1}\n', 24), {
      headers: { 'content-encoding': 'br' },
    });
    expect(a.status).toBe(413);
    expect(a.json.result.error.code).toBe('window_too_large');
  });

  it('two br streams back to back: both are committed', async () => {
    const body = Buffer.concat([
      br('{"vendorid":"br-one"}\n', 22),
      br('{"vendorid":"br-two"}\n', 22),
    ]);
    const a = await send(`${s.url}/`, body, { headers: { 'content-encoding': 'br' } });
    expect(a.status).toBe(200);
    expect(a.json.result.stats.records.valid).toBe(2);
    expect(csvText(s)).toContain('br-one,,,\r\nbr-two,,,\r\n');
  });

  it('two zlib streams back to back: both are committed; one followed by junk is 400', async () => {
    const body = Buffer.concat([
      deflateSync('{"vendorid":"zlib-one"}\n'),
      deflateSync('{"vendorid":"zlib-two"}\n'),
    ]);
    const a = await send(`${s.url}/`, body, { headers: { 'content-encoding': 'deflate' } });
    expect(a.json.result.stats.records.valid).toBe(2);
    const junk = Buffer.concat([deflateSync('{"vendorid":"zlib-junk"}\n'), Buffer.from('JUNK')]);
    const b = await send(`${s.url}/`, junk, { headers: { 'content-encoding': 'deflate' } });
    expect(b.status).toBe(400);
    expect(b.json.result.error.code).toBe('corrupt_body');
    expect(csvText(s)).not.toContain('zlib-junk');
  });

  it('trickling br clients hold the decoder budget: the next gets 503 with Retry-After', async () => {
    // 4 MiB windows whose first bytes have decoded some output, then nothing more comes.
    const lines = Array.from({ length: 200000 }, (_, i) => `{"vendorid":"t${i * 7919}"}\n`);
    const stream = br(lines.join(''), 22);
    expect(stream.length).toBeGreaterThan(4096);
    const held = [0, 1].map(() => {
      const req = request(`${s.url}/`, {
        method: 'POST',
        headers: { 'content-encoding': 'br', 'content-length': stream.length },
      });
      req.on('error', () => undefined);
      req.write(stream.subarray(0, 64));
      return req;
    });
    await new Promise((ok) => setTimeout(ok, 300));
    const a = await send(`${s.url}/`, stream, { headers: { 'content-encoding': 'br' } });
    expect(a.status).toBe(503);
    expect(a.json.result.error.code).toBe('overloaded');
    expect(a.headers['retry-after']).toBe('1');
    for (const req of held) req.destroy();
    // Once they are gone, the budget is free again.
    await new Promise((ok) => setTimeout(ok, 300));
    const b = await send(`${s.url}/`, stream, { headers: { 'content-encoding': 'br' } });
    expect(b.status).toBe(200);
    expect(b.json.result.stats.records.valid).toBe(200000);
  });
});
