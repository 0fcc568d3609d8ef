/**
 * SHUTDOWN_DELAY_MS (SPEC §7): on SIGTERM /health turns 503 at once, while the service keeps
 * accepting and answering new connections for the delay; only then does it close its listener
 * and drain. A balancer polling /health takes the host out before any connection is refused.
 */
import { describe, expect, it } from '@jest/globals';
import { connect } from 'node:net';
import { send, startServer } from '../support/server.js';

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
}

describe('SHUTDOWN_DELAY_MS', () => {
  it('keeps accepting and answering, unready, for the delay, then closes and exits', async () => {
    const server = await startServer({ SHUTDOWN_DELAY_MS: '2000' });
    const body = Buffer.from('{"vendorid":1}\n');
    expect((await send(`${server.url}/health`, null, { method: 'GET' })).status).toBe(200);
    const signalledAt = Date.now();
    server.proc.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 200));
    const health = await send(`${server.url}/health`, null, { method: 'GET' });
    expect(health.status).toBe(503);
    // New connections (agent: false) during the delay: taken and answered.
    const answers: number[] = [];
    while (Date.now() - signalledAt < 1700) {
      answers.push((await send(`${server.url}/ingest`, body)).status);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(answers.length).toBeGreaterThan(5);
    expect(answers.every((s) => s === 200)).toBe(true);
    const exit = await server.stop(); // already signalled: waits for the exit
    expect(Date.now() - signalledAt).toBeGreaterThanOrEqual(2000);
    expect([0, 'SIGTERM']).toContain(exit); // Nest re-raises the signal after a clean close
    expect(await refused(server.port)).toBe(true);
  });

  it('without it (the default) the listener closes at once', async () => {
    const server = await startServer();
    server.proc.kill('SIGTERM');
    const exit = await server.stop();
    expect([0, 'SIGTERM']).toContain(exit); // Nest re-raises the signal after a clean close
    expect(await refused(server.port)).toBe(true);
  });
});
