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
import { send, startServer, type RunningServer } from '../support/server.js';

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
    const body = (tag: string) => Buffer.from(`{"vendorid":"${tag}"}\n`);
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
