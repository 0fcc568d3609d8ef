/**
 * Long lines and worker memory (LONG_LINE_MEMORY_BYTES, src/ingest/long-line-budget.ts): a line
 * is read whole before it is written, so requests in the middle of long lines wait, body paused,
 * while others' long lines fill the room. Waiting is not held against them (no body_timeout, no
 * MIN_BODY_RATE), nothing is lost, and ordinary requests go by meanwhile.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync, readdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { metricByLabel, send, startServer, type RunningServer } from '../support/server.js';
import { prng, taxiBody, taxiLine } from '../support/taxi.js';

const BODY_TIMEOUT_MS = 1000;

/** A taxi record padded with a `notes` string to `bytes` bytes, LF included. */
function longLine(index: number, bytes: number): string {
  const head = taxiLine(prng(index + 1), index).slice(0, -2);
  return `${head},"notes":"${'x'.repeat(bytes - head.length - ',"notes":""}\n'.length)}"}\n`;
}

async function metric(url: string, name: string): Promise<number> {
  return [...(await metricByLabel(url, name, 'worker')).values()].reduce((a, b) => a + b, 0);
}

describe('long lines (LONG_LINE_MEMORY_BYTES)', () => {
  let server: RunningServer;
  beforeAll(async () => {
    // Room for one line of MAX_LINE_BYTES at a time.
    server = await startServer({
      LONG_LINE_MEMORY_BYTES: '1',
      MAX_LINE_BYTES: String(512 * 1024),
      BODY_TIMEOUT_MS: String(BODY_TIMEOUT_MS),
      MIN_BODY_RATE: '100000',
      MIN_BODY_RATE_GRACE_MS: '500',
      CSV_EOL: 'lf',
    });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('holds other long lines back while one is read, writes every line once it ends, and lets ordinary requests by', async () => {
    // The first request sends a fifth of its long line, then the rest slowly (fast enough for its
    // own body timers), for about three times BODY_TIMEOUT_MS.
    const sock = connect(server.port, '127.0.0.1');
    await new Promise<void>((ok) => sock.once('connect', ok));
    const body = Buffer.from(longLine(0, 480_000) + longLine(1, 1000));
    sock.write(
      `POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
    );
    let firstAnswer = '';
    sock.on('data', (d: Buffer) => (firstAnswer += d.toString()));
    const firstClosed = new Promise<void>((ok) => sock.on('close', () => ok()));
    sock.write(body.subarray(0, 100_000));
    await new Promise((ok) => setTimeout(ok, 200));

    // Three more requests with long lines arrive meanwhile: they must wait.
    const others = [1, 2, 3].map((i) =>
      send(
        `${server.url}/ingest`,
        Buffer.from(
          longLine(10 * i, 250_000) + longLine(10 * i + 1, 1000) + longLine(10 * i + 2, 400_000),
        ),
      ),
    );
    let waiting = 0;
    for (let t = 0; t < 50 && waiting < 3; t++) {
      await new Promise((ok) => setTimeout(ok, 100));
      waiting = await metric(server.url, 'ingest_long_line_waiting_requests');
    }
    expect(waiting).toBe(3);
    // An ordinary request is not held back by them.
    const ordinary = await send(`${server.url}/ingest`, taxiBody(50, 7));
    expect(ordinary.status).toBe(200);

    // Hold the others past BODY_TIMEOUT_MS (and past MIN_BODY_RATE's grace), keeping the first
    // request's own body going slowly, then let it finish.
    for (let sent = 100_000; sent < body.length - 1;) {
      const next = Math.min(body.length - 1, sent + 40_000);
      sock.write(body.subarray(sent, next));
      sent = next;
      await new Promise((ok) => setTimeout(ok, BODY_TIMEOUT_MS / 3));
    }
    sock.write(body.subarray(body.length - 1));
    await firstClosed;
    expect(firstAnswer).toMatch(/^HTTP\/1\.1 200 /);
    expect(firstAnswer).toContain('"records":{"valid":2,"invalid":0,"total":2}');

    const answers = await Promise.all(others);
    for (const a of answers) {
      expect(a.status).toBe(200);
      expect(a.text).toContain('"records":{"valid":3,"invalid":0,"total":3}');
    }
    expect(await metric(server.url, 'ingest_long_line_waits_total')).toBeGreaterThanOrEqual(3);
    expect(await metric(server.url, 'ingest_long_line_waiting_requests')).toBe(0);
    expect(await metric(server.url, 'ingest_long_line_reserved_bytes')).toBe(0);

    // Every record is a row: 2 + 3 × 3 long ones and the 50 ordinary ones.
    const file = readdirSync(server.csvDir).find((f) => f.endsWith('.csv'))!;
    const rows = readFileSync(join(server.csvDir, file), 'utf8').split('\n').filter(Boolean);
    expect(rows).toHaveLength(2 + 9 + 50);
  }, 30000);

  it('a request that fails while waiting hands nothing on and leaves the line', async () => {
    const sock = connect(server.port, '127.0.0.1');
    await new Promise<void>((ok) => sock.once('connect', ok));
    const body = Buffer.from(longLine(100, 300_000));
    sock.write(`POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n`);
    sock.write(body.subarray(0, 100_000));
    await new Promise((ok) => setTimeout(ok, 200));
    // A second one waits, then its client goes away.
    const waiter = connect(server.port, '127.0.0.1');
    await new Promise<void>((ok) => waiter.once('connect', ok));
    const other = Buffer.from(longLine(101, 300_000));
    waiter.write(`POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: ${other.length}\r\n\r\n`);
    waiter.write(other.subarray(0, 200_000));
    let waiting = 0;
    for (let t = 0; t < 50 && waiting < 1; t++) {
      await new Promise((ok) => setTimeout(ok, 100));
      waiting = await metric(server.url, 'ingest_long_line_waiting_requests');
    }
    expect(waiting).toBe(1);
    waiter.destroy();
    for (let t = 0; t < 50 && waiting > 0; t++) {
      await new Promise((ok) => setTimeout(ok, 100));
      waiting = await metric(server.url, 'ingest_long_line_waiting_requests');
    }
    expect(waiting).toBe(0);
    sock.destroy();
    let reserved = 1;
    for (let t = 0; t < 50 && reserved > 0; t++) {
      await new Promise((ok) => setTimeout(ok, 100));
      reserved = await metric(server.url, 'ingest_long_line_reserved_bytes');
    }
    expect(reserved).toBe(0);
    // The room is free again: a long line goes straight through.
    const a = await send(`${server.url}/ingest`, Buffer.from(longLine(102, 300_000)));
    expect(a.status).toBe(200);
  }, 30000);
});
