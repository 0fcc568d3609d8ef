/**
 * Readiness and liveness (SPEC §3) on a CSV folder that is a real tmpfs, remounted read-only and
 * back while the server runs. Needs root for mount (CI runs as root).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { waitFor } from '../support/pm2.js';
import { send, startServer, tempDir, type Answer, type RunningServer } from '../support/server.js';

describe('/health on a tmpfs CSV folder', () => {
  const dir = join(tempDir(), 'csv');
  let s: RunningServer;

  beforeAll(async () => {
    mkdirSync(dir);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', dir]);
    s = await startServer({ CSV_DIR: dir, HEALTH_MIN_FREE_BYTES: String(2 << 20) });
  });
  afterAll(async () => {
    await s?.stop();
    execFileSync('umount', [dir]);
  });

  const health = async () => send(`${s.url}/health`, null, { method: 'GET' });

  it('is ready on a writable folder with free space', async () => {
    const a = await health();
    expect(a.status).toBe(200);
    expect(a.json.status).toBe('ok');
    expect(Object.keys(a.json.details).sort()).toEqual([
      'commit_record',
      'csv_dir',
      'disk',
      'shutdown',
    ]);
  });

  // Runs before any commit: a tmpfs with files open for writing cannot be remounted read-only
  // (EBUSY), and the service opens its CSV descriptors at the first commit.
  it('turns 503 naming csv_dir when the folder is remounted read-only, then 200 again', async () => {
    execFileSync('mount', ['-o', 'remount,ro', dir]);
    try {
      const down = await health();
      expect(down.status).toBe(503);
      expect(down.json.error.csv_dir.status).toBe('down');
      expect(down.json.error.csv_dir.message).toMatch(/read-only/i);
      // Liveness checks nothing external.
      expect((await send(`${s.url}/health/live`, null, { method: 'GET' })).status).toBe(200);
      // Ingest goes on until a commit actually fails: this one must, with nothing written.
      const a = await send(`${s.url}/ingest`, Buffer.from('{"vendorid":1}\n'));
      expect(a.status).toBeGreaterThanOrEqual(500);
      expect(a.json.result.status).toBe('error');
    } finally {
      execFileSync('mount', ['-o', 'remount,rw', dir]);
    }
    const up = await health();
    expect(up.status).toBe(200);
    const a = await send(`${s.url}/ingest`, Buffer.from('{"vendorid":1}\n'));
    expect(a.status).toBe(200);
  });

  it('turns 503 naming disk when free space falls below HEALTH_MIN_FREE_BYTES', async () => {
    execFileSync('dd', ['if=/dev/zero', `of=${join(dir, 'filler')}`, 'bs=1M', 'count=7'], {
      stdio: 'ignore',
    });
    try {
      const down = await health();
      expect(down.status).toBe(503);
      expect(down.json.error.disk.status).toBe('down');
      expect(down.json.details.csv_dir.status).toBe('up');
      // Ingest goes on until a commit fails: 2 MB of rows do not fit, 507, nothing written.
      const csv = join(dir, readdirSync(dir).find((f) => f.endsWith('.csv')) ?? 'none.csv');
      const sizeBefore = existsSync(csv) ? statSync(csv).size : 0;
      const big = Buffer.from(`{"vendorid":"${'x'.repeat(1000)}"}\n`.repeat(2000));
      const full = await send(`${s.url}/ingest`, big);
      expect(full.status).toBe(507);
      expect(full.json.result.error.code).toBe('no_space');
      expect(existsSync(csv) ? statSync(csv).size : 0).toBe(sizeBefore);
      expect(readdirSync(dir).filter((f) => f.includes('spill'))).toEqual([]);
    } finally {
      execFileSync('rm', [join(dir, 'filler')]);
    }
    expect((await health()).status).toBe(200);
  });

  it('turns 503 naming commit_record while the lock file record is unreadable; ingest answers 500 and writes nothing', async () => {
    const ingest = () => send(`${s.url}/ingest`, Buffer.from('{"vendorid":1}\n'));
    expect((await ingest()).status).toBe(200); // the lock file exists from here on
    const lock = join(dir, '.nyc_taxi.lock');
    const csv = join(
      dir,
      readdirSync(dir).find((f) => f.endsWith('.csv'))!,
    );
    const size = statSync(csv).size;
    // A record cut short, written in place as a damaged file system or a stray copy could leave it.
    writeFileSync(lock, 'PENDING 97 5d0b');
    try {
      const down = await health();
      expect(down.status).toBe(503);
      expect(down.json.error.commit_record).toMatchObject({ status: 'down', path: lock });
      expect(down.json.error.commit_record.message).toMatch(/unreadable.*PENDING 97 5d0b/);
      expect(down.json.details.csv_dir.status).toBe('up');
      const a = await ingest();
      expect(a.status).toBe(500);
      expect(a.json.result.error.code).toBe('commit_record_unreadable');
      expect(statSync(csv).size).toBe(size);
      expect(s.output()).toContain(lock); // logged, naming the file to repair
    } finally {
      writeFileSync(lock, 'CLEAN\n'); // the operator's repair
    }
    expect((await health()).status).toBe(200);
    expect((await ingest()).status).toBe(200);
    expect(statSync(csv).size).toBeGreaterThan(size);
  });

  it('turns 503 naming shutdown as soon as draining starts, and still answers', async () => {
    // The listening socket closes when draining starts, so readiness is asked on keep-alive
    // connections opened before, while a slow body keeps the drain open. Several connections ask
    // without pause around the signal, so some check is under way when draining starts: its answer
    // must name shutdown too (terminus alone would answer 503 with an empty `error`).
    const agents = Array.from({ length: 8 }, () => new Agent({ keepAlive: true, maxSockets: 1 }));
    for (const agent of agents)
      expect((await send(`${s.url}/health`, null, { method: 'GET', agent })).status).toBe(200);
    const req = request(`${s.url}/ingest`, {
      method: 'POST',
      headers: { 'content-length': 1000 },
    });
    req.on('error', () => undefined);
    const answered = new Promise<number>((resolve) =>
      req.on('response', (r) => resolve(r.statusCode ?? 0)),
    );
    req.write('{"vendorid":"slow"}\n');
    // The drain waits for it only once the service has it in flight.
    await waitFor(async () => {
      const m = await send(`${s.url}/metrics`, null, { method: 'GET' });
      return /^ingest_in_flight_requests(\{[^}]*\})? 1$/m.test(m.text);
    }, 10000);
    // Each connection asks until an answer closes it (a busy machine may take a while to get to
    // the signal). A check under way when draining starts is answered 503 on a kept connection;
    // the next request on it gets `Connection: close`.
    const untilClosed = async (agent: Agent) => {
      const answers: Answer[] = [];
      const deadline = Date.now() + 10000;
      while (answers.at(-1)?.headers.connection !== 'close' && Date.now() < deadline)
        answers.push(await send(`${s.url}/health`, null, { method: 'GET', agent }));
      return answers;
    };
    const polls = agents.map(untilClosed);
    await new Promise((r) => setTimeout(r, 50));
    s.proc.kill('SIGTERM');
    for (const answers of await Promise.all(polls)) {
      expect(answers.at(-1)?.headers.connection).toBe('close');
      const downs = answers.slice(answers.findIndex((a) => a.status !== 200));
      expect(downs.length).toBeGreaterThan(0);
      expect(downs.length).toBeLessThanOrEqual(2);
      for (const down of downs) {
        expect(down.status).toBe(503);
        expect(down.json.error.shutdown).toEqual({ status: 'down', message: 'draining' });
      }
    }
    req.end(' '.repeat(1000 - 20));
    expect(await answered).toBe(200);
    for (const agent of agents) agent.destroy();
  });
});
