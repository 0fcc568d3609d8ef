/**
 * glibc's trim threshold (src/runtime/malloc-tuning.ts): `npm start` forks its workers with it and
 * `npm run start:single` starts its server with it, a user's own value wins, and a worker started
 * without it says so once.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import { execFile, spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  MALLOC_TRIM_THRESHOLD,
  mallocTrimNotice,
  onGlibc,
  startEnvironment,
} from '../../src/runtime/malloc-tuning.js';
import { freePort, ROOT, send, startServer, tempDir } from '../support/server.js';
import { waitFor } from '../support/pm2.js';

const run = promisify(execFile);
const itOnGlibc = onGlibc() ? it : it.skip;

function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const name of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) children.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return children;
}

/** The service's workers among a process's children. */
function workersOf(pid: number): number[] {
  return childrenOf(pid).filter((c) => {
    try {
      return readFileSync(`/proc/${c}/cmdline`, 'latin1').includes('dist/main.js');
    } catch {
      return false; // gone meanwhile
    }
  });
}

describe('mallocTrimNotice', () => {
  it('speaks only when the threshold is missing where it applies', () => {
    expect(mallocTrimNotice(null)).toMatch(/^MALLOC_TRIM_THRESHOLD_ was not in this worker's/);
    expect(mallocTrimNotice('33554432')).toBeNull();
    // Not glibc, or not Linux: nothing to say.
    expect(mallocTrimNotice(undefined)).toBeNull();
  });
});

describe('ecosystem.config.js', () => {
  const valueAfterLoading = async (env: Record<string, string>) =>
    (
      await run(
        process.execPath,
        ['-e', "require('./ecosystem.config.js'); console.log(process.env.MALLOC_TRIM_THRESHOLD_)"],
        { cwd: ROOT, env: { PATH: process.env.PATH, ...env } },
      )
    ).stdout.trim();

  it('sets the threshold for the workers pm2-runtime forks, and keeps a value given', async () => {
    expect(await valueAfterLoading({})).toBe(String(MALLOC_TRIM_THRESHOLD));
    expect(await valueAfterLoading({ MALLOC_TRIM_THRESHOLD_: '1048576' })).toBe('1048576');
  });
});

describe('npm run start:single', () => {
  // The script is `npm run build && <assignment> node dist/main.js`; its second half runs here as
  // npm runs it (sh -c), with the server swapped for printing what it would be started with.
  const script = (
    JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    }
  ).scripts['start:single'];
  const valueAtStart = async (env: Record<string, string>) => {
    const start = script.split(' && ')[1];
    const printing = start.replace(/ node dist\/main\.js$/, ' printenv MALLOC_TRIM_THRESHOLD_');
    return (
      await run('sh', ['-c', printing], { env: { PATH: process.env.PATH, ...env } })
    ).stdout.trim();
  };

  it('starts the server with the same threshold as npm start, and keeps a value given', async () => {
    expect(script).toMatch(/^npm run build && .* node dist\/main\.js$/);
    expect(await valueAtStart({})).toBe(String(MALLOC_TRIM_THRESHOLD));
    expect(await valueAtStart({ MALLOC_TRIM_THRESHOLD_: '1048576' })).toBe('1048576');
  });
});

describe('a standalone worker', () => {
  itOnGlibc('started without the threshold logs the notice once; with it, not at all', async () => {
    const without = await startServer();
    const withIt = await startServer({ MALLOC_TRIM_THRESHOLD_: '33554432' });
    try {
      await waitFor(async () => without.output().includes('MALLOC_TRIM_THRESHOLD_'), 5000);
      // Both served a request, so both are past start-up.
      expect((await send(`${without.url}/ingest`, Buffer.from('{"vendorid":1}\n'))).status).toBe(
        200,
      );
      expect((await send(`${withIt.url}/ingest`, Buffer.from('{"vendorid":1}\n'))).status).toBe(
        200,
      );
      expect(without.output().match(/was not in this worker's environment/g)).toHaveLength(1);
      expect(withIt.output()).not.toContain('MALLOC_TRIM_THRESHOLD_');
    } finally {
      await without.stop();
      await withIt.stop();
    }
  });
});

describe('npm start (pm2-runtime start ecosystem.config.js)', () => {
  let runtime: ReturnType<typeof spawn> | undefined;
  afterAll(async () => {
    if (runtime && runtime.exitCode === null && runtime.signalCode === null) {
      const exited = new Promise((resolve) => runtime!.once('exit', resolve));
      runtime.kill('SIGINT');
      await exited;
    }
  });

  itOnGlibc('forks workers whose start environment holds the threshold', async () => {
    const home = tempDir('pm2-home-');
    const port = await freePort();
    let out = '';
    runtime = spawn(
      join(ROOT, 'node_modules', '.bin', 'pm2-runtime'),
      ['start', 'ecosystem.config.js'],
      {
        cwd: ROOT,
        env: {
          PATH: process.env.PATH,
          HOME: home,
          PM2_HOME: home,
          HOST: '127.0.0.1',
          PORT: String(port),
          CSV_DIR: join(home, 'csv'),
          INSTANCES: '2',
          // info: each worker logs its requests, which the end of the test relies on.
          LOG_LEVEL: 'info',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    runtime.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    runtime.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const pid = runtime.pid!;
    await waitFor(async () => {
      if (workersOf(pid).length < 2) return false;
      return (
        (
          await send(`http://127.0.0.1:${port}/health/live`, null, { method: 'GET' }).catch(() => ({
            status: 0,
          }))
        ).status === 200
      );
    }, 30000);
    const workers = workersOf(pid);
    expect(workers).toHaveLength(2);
    for (const w of workers) {
      expect(startEnvironment(w).get('MALLOC_TRIM_THRESHOLD_')).toBe(String(MALLOC_TRIM_THRESHOLD));
    }
    // pm2-runtime's own process was started without it: only what it forks has it.
    expect(startEnvironment(pid).has('MALLOC_TRIM_THRESHOLD_')).toBe(false);
    // A worker would log the notice before it reports ready, and pm2 relays each worker's output
    // in order: once a request line of every worker has reached pm2-runtime's output, so would
    // have a notice.
    await waitFor(async () => {
      await send(`http://127.0.0.1:${port}/ingest`, Buffer.from('{"vendorid":1}\n'));
      return workers.every((w) => new RegExp(`"pid":${w}\\b[^\\n]*"msg":"ingest"`).test(out));
    }, 30000);
    expect(out).not.toContain('MALLOC_TRIM_THRESHOLD_ was not in');
  });
});
