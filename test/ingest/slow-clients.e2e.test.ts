/**
 * MIN_BODY_RATE (SPEC §2, issue 17): clients that trickle their bodies cannot hold a worker's
 * MAX_IN_FLIGHT slots for long. A crowd of them keeps a normal client from a 200 for no longer
 * than the grace period, gets 408 body_too_slow, and writes nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { localDay } from '../../src/csv/csv-committer.js';
import { send, startServer, type RunningServer } from '../support/server.js';

const GRACE_MS = 1500;

/** A client that sends its headers, then one byte every `everyMs`; resolves with what it read. */
function trickle(port: number, everyMs: number): { socket: Socket; answer: Promise<string> } {
  const socket = connect(port, '127.0.0.1');
  const body = '{"vendorid":"slow","trip_distance":1}\n';
  socket.write(`POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n`);
  let sent = 0;
  const timer = setInterval(() => {
    if (sent < body.length - 1 && !socket.destroyed) socket.write(body[sent++]);
  }, everyMs);
  let text = '';
  socket.on('data', (d: Buffer) => (text += d.toString()));
  const answer = new Promise<string>((resolve) => {
    socket.on('close', () => {
      clearInterval(timer);
      resolve(text);
    });
    socket.on('error', () => undefined);
  });
  return { socket, answer };
}

describe('MIN_BODY_RATE', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer({
      MAX_IN_FLIGHT: '4',
      MIN_BODY_RATE: '240',
      MIN_BODY_RATE_GRACE_MS: String(GRACE_MS),
      CSV_EOL: 'lf',
    });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('a crowd of slow clients keeps a normal one from a 200 for no longer than the grace period', async () => {
    const crowd = Array.from({ length: 8 }, () => trickle(server.port, 200));
    await new Promise((r) => setTimeout(r, 200)); // they hold every slot
    const started = Date.now();
    const body = Buffer.from('{"vendorid":"normal","trip_distance":2}\n');
    let first = await send(`${server.url}/ingest`, body);
    const statuses = [first.status];
    while (first.status === 503) {
      expect(first.headers['retry-after']).toBe('1');
      await new Promise((r) => setTimeout(r, 100));
      first = await send(`${server.url}/ingest`, body);
      statuses.push(first.status);
    }
    const waited = Date.now() - started;
    expect(first.status).toBe(200);
    expect(statuses[0]).toBe(503); // the slots were taken
    expect(waited).toBeLessThan(GRACE_MS + 1500);
    // Four of them took the slots and got 408 body_too_slow; the others found them taken (503).
    const answers = await Promise.all(crowd.map((c) => c.answer));
    const slow = answers.filter((a) => /^HTTP\/1\.1 408/.test(a));
    expect(slow).toHaveLength(4);
    for (const a of slow) expect(a).toContain('"code":"body_too_slow"');
    expect(answers.filter((a) => /^HTTP\/1\.1 503/.test(a))).toHaveLength(4);
    const file = join(server.csvDir, `nyc_taxi-${localDay(new Date())}.csv`);
    expect(existsSync(file) ? readFileSync(file, 'utf8') : '').toBe('normal,,2,\n');
  });

  it('leaves a slow but steady body alone: 400 B/s for 3 s is above 240 B/s', async () => {
    const line = '{"vendorid":"steady","trip_distance":3}\n';
    const body = Buffer.from(line.repeat(30)); // 1,230 bytes
    const pieces: Buffer[] = [];
    for (let i = 0; i < body.length; i += 40) pieces.push(body.subarray(i, i + 40));
    const socket = connect(server.port, '127.0.0.1');
    socket.write(`POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n`);
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString()));
    for (const p of pieces) {
      socket.write(p);
      await new Promise((r) => setTimeout(r, 100)); // 40 bytes per 100 ms
    }
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (text.includes('\r\n\r\n{')) {
          clearInterval(poll);
          resolve();
        }
      }, 20);
    });
    socket.destroy();
    expect(text).toMatch(/^HTTP\/1\.1 200/);
    expect(text).toContain('"valid":30');
  });
});
