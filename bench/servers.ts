/**
 * The three servers of `npm run bench`, each started on 127.0.0.1 on a free port and known by the
 * pids of its worker processes (whose CPU time is measured):
 * the service under pm2 as users run it, the drain-only ceiling and the naive Nest variant.
 */
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { MALLOC_TRIM_THRESHOLD } from '../src/runtime/malloc-tuning.js';
import { startCluster, type Pm2Cluster } from '../test/support/pm2.js';
import { freePort, ROOT } from '../test/support/server.js';
import type { ClusterReady } from './cluster-primary.js';
import { isAlive } from './load.js';

/**
 * NODE_OPTIONS that make a built service run without its transform: bench/no-transform/ swaps
 * NdjsonCsvTransform for a stub that drops every chunk (the service itself has no such switch).
 */
export const NO_TRANSFORM_NODE_OPTIONS = `--import=${pathToFileURL(join(ROOT, 'bench', 'no-transform', 'register.mjs')).href}`;

export interface BenchServer {
  name: string;
  url: string;
  /** The processes that serve requests (pm2 or cluster workers). */
  workers: number[];
  stop(): Promise<void>;
}

/**
 * glibc's heap trim threshold as `npm start` sets it (src/runtime/malloc-tuning.ts), given to every
 * server of a bench, the ceiling and the naive variant too, so that they differ by their code only.
 */
export const SAME_MALLOC = { MALLOC_TRIM_THRESHOLD_: String(MALLOC_TRIM_THRESHOLD) };

/**
 * The service as `npm start` runs it: the real ecosystem.config.js, pm2 cluster mode, INSTANCES=max,
 * metrics on, the default log level; PM2_HOME in a temporary folder, `pm2 kill` on stop.
 */
export async function startService(
  env: Record<string, string> = {},
): Promise<BenchServer & { cluster: Pm2Cluster }> {
  const instances =
    env.INSTANCES !== undefined && env.INSTANCES !== 'max'
      ? Number(env.INSTANCES)
      : availableParallelism();
  const cluster = await startCluster(instances, {
    // npm start (pm2-runtime) forks its workers with it (ecosystem.config.js); here the pm2
    // daemon gets it from the CLI's environment and hands it on.
    ...SAME_MALLOC,
    INSTANCES: 'max',
    METRICS_ENABLED: 'true',
    LOG_LEVEL: 'info',
    ...env,
  });
  const workers = (await cluster.workers()).map((w) => w.pid);
  return {
    name: 'service',
    url: cluster.url,
    workers,
    cluster,
    stop: () => cluster.kill(),
  };
}

/** A bench/*-server.ts node:cluster, run through swc like the benchmarks themselves. */
export async function startNodeCluster(
  name: string,
  script: string,
  env: Record<string, string> = {},
): Promise<BenchServer> {
  const port = await freePort();
  const proc = spawn(
    process.execPath,
    ['--import', '@swc-node/register/esm-register', join(ROOT, 'bench', script)],
    {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH,
        HOST: '127.0.0.1',
        PORT: String(port),
        ...SAME_MALLOC,
        ...env,
      },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  );
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const ready = await new Promise<ClusterReady>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start in 60 s`)), 60000);
    proc.on('message', (m: ClusterReady) => {
      if (m.ready) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`${name} exited during start-up`));
    });
  });
  return {
    name,
    url: `http://127.0.0.1:${port}`,
    workers: ready.workers,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      // Workers left behind by a primary that did not get to stop them.
      for (const pid of [ready.primary, ...ready.workers]) {
        if (isAlive(pid)) process.kill(pid, 'SIGKILL');
      }
    },
  };
}
