/**
 * Load shedding (issue 17): while the event loop falls behind, new ingest requests get 503
 * `overloaded` with Retry-After and write nothing; /health is never shed; once the loop keeps up
 * again, requests are taken. The worker is made to fall behind deterministically by stopping it
 * (SIGSTOP) for longer than the threshold: the event-loop delay histogram records the pause.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { localDay } from '../../src/csv/csv-committer.js';
import { TURN_MIN_REQUESTS } from '../../src/runtime/load-shedder.js';
import { RawConnection, rawPost } from '../support/raw-http.js';
import { send, startServer, type RunningServer } from '../support/server.js';

const body = (tag: string) => Buffer.from(`{"vendorid":"${tag}"}\n`);

describe('load shedding on event-loop delay', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer({
      SHED_EVENT_LOOP_DELAY_MS: '5',
      SHED_SAMPLE_MS: '1000',
      CSV_EOL: 'lf',
    });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('answers 503 overloaded with Retry-After while behind, keeps /health, then takes requests again', async () => {
    expect((await send(`${server.url}/ingest`, body('before'))).status).toBe(200);
    const pid = server.proc.pid!;
    process.kill(pid, 'SIGSTOP');
    await new Promise((r) => setTimeout(r, 2500));
    process.kill(pid, 'SIGCONT');
    const shed = await send(`${server.url}/ingest`, body('shed'));
    expect(shed.status).toBe(503);
    expect(shed.headers['retry-after']).toBe('1');
    expect(shed.json.result.error.code).toBe('overloaded');
    expect(shed.json.result.error.message).toMatch(/SHED_EVENT_LOOP_DELAY_MS/);
    const health = await send(`${server.url}/health/live`, null, { method: 'GET' });
    expect(health.status).toBe(200);
    // Within two sample windows the loop's mean delay is back under the threshold.
    let after = await send(`${server.url}/ingest`, body('after'));
    const deadline = Date.now() + 5000;
    while (after.status === 503 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      after = await send(`${server.url}/ingest`, body('after'));
    }
    expect(after.status).toBe(200);
    const file = join(server.csvDir, `nyc_taxi-${localDay(new Date())}.csv`);
    expect(existsSync(file) ? readFileSync(file, 'utf8') : '').toBe('before,,,\nafter,,,\n');
  });
});

describe('load shedding within one event-loop turn', () => {
  let server: RunningServer;
  beforeAll(async () => {
    // Only the bound on a turn: no sampled signal, so nothing but the turn refuses.
    server = await startServer({
      SHED_EVENT_LOOP_DELAY_MS: '0',
      SHED_EVENT_LOOP_TURN_MS: '1',
      CSV_EOL: 'lf',
    });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('refuses the rest of a turn that has run SHED_EVENT_LOOP_TURN_MS, and writes none of it', async () => {
    // Twelve whole requests wait in their sockets while the worker is stopped, so that one turn
    // reads them all; each takes milliseconds to serve (40,000 lines), longer than the 1 ms bound.
    const n = TURN_MIN_REQUESTS + 4;
    const conns = await Promise.all(
      Array.from({ length: n }, () => RawConnection.open(server.port)),
    );
    await new Promise((r) => setTimeout(r, 200));
    const pid = server.proc.pid!;
    process.kill(pid, 'SIGSTOP');
    try {
      conns.forEach((c, i) =>
        c.socket.write(rawPost(`{"vendorid":"turn-${i}"}\n`.repeat(40_000), { path: '/ingest' })),
      );
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    const answers = await Promise.all(conns.map((c) => c.answer()));
    conns.forEach((c) => c.socket.destroy());
    const taken = answers.flatMap((a, i) => (a.status === 200 ? [i] : []));
    // A turn's first TURN_MIN_REQUESTS are let through; the turn is over after them.
    expect(taken.length).toBeGreaterThanOrEqual(TURN_MIN_REQUESTS);
    expect(taken.length).toBeLessThan(n);
    for (const a of answers) {
      if (a.status === 200) continue;
      expect(a.status).toBe(503);
      expect(a.headers['retry-after']).toBe('1');
      expect(JSON.parse(a.body).result.error.code).toBe('overloaded');
      expect(a.body).toMatch(/SHED_EVENT_LOOP_TURN_MS/);
    }
    // A request in a later turn is taken.
    expect((await send(`${server.url}/ingest`, body('later'))).status).toBe(200);
    const file = join(server.csvDir, `nyc_taxi-${localDay(new Date())}.csv`);
    const rows = readFileSync(file, 'utf8').split('\n').filter(Boolean);
    for (let i = 0; i < n; i++) {
      const mine = rows.filter((r) => r === `turn-${i},,,`).length;
      expect(mine).toBe(taken.includes(i) ? 40_000 : 0);
    }
    expect(rows.filter((r) => r === 'later,,,')).toHaveLength(1);
  });
});
