/**
 * The real pm2 cluster for tests: `pm2 start ecosystem.config.js` with an isolated PM2_HOME in a
 * temporary folder, and `pm2 kill` of that daemon afterwards.
 */
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, metricByLabel, ROOT, send, tempDir } from './server.js';

const run = promisify(execFile);
const PM2 = join(ROOT, 'node_modules', '.bin', 'pm2');

export interface Pm2Cluster {
  url: string;
  port: number;
  csvDir: string;
  home: string;
  env: Record<string, string>;
  pm2(...args: string[]): Promise<string>;
  /** pm2's list: pm_id, pid and status of each worker. */
  workers(): Promise<{ pmId: number; pid: number; status: string; restarts: number }[]>;
  kill(): Promise<void>;
}

export async function startCluster(
  instances: number,
  extraEnv: Record<string, string> = {},
): Promise<Pm2Cluster> {
  const home = tempDir('pm2-home-');
  const port = await freePort();
  const csvDir = join(tempDir(), 'csv');
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    // The workers name day files by their local day, as the test reads them.
    ...(process.env.TZ === undefined ? {} : { TZ: process.env.TZ }),
    HOME: home,
    PM2_HOME: home,
    HOST: '127.0.0.1',
    PORT: String(port),
    CSV_DIR: csvDir,
    INSTANCES: String(instances),
    LOG_LEVEL: 'warn',
    // A peer's series may take long on a loaded machine; the tests count every worker's.
    METRICS_TIMEOUT_MS: '10000',
    ...extraEnv,
  };
  const pm2 = async (...args: string[]) =>
    (await run(PM2, args, { cwd: ROOT, env, maxBuffer: 64 << 20 })).stdout;
  const cluster: Pm2Cluster = {
    url: `http://127.0.0.1:${port}`,
    port,
    csvDir,
    home,
    env,
    pm2,
    async workers() {
      const list = JSON.parse(await pm2('jlist')) as {
        pm_id: number;
        pid: number;
        pm2_env: { status: string; restart_time: number };
      }[];
      return list.map((p) => ({
        pmId: p.pm_id,
        pid: p.pid,
        status: p.pm2_env.status,
        restarts: p.pm2_env.restart_time,
      }));
    },
    async kill() {
      await pm2('kill');
      // The daemon is gone: its home (logs, sockets, dump) goes too. The CSV folder is the
      // caller's to read and remove.
      rmSync(home, { recursive: true, force: true });
    },
  };
  try {
    // wait_ready: `start` returns once every worker sent 'ready'.
    await pm2('start', 'ecosystem.config.js');
    await waitFor(async () => {
      const ws = await cluster.workers();
      return ws.length === instances && ws.every((w) => w.status === 'online');
    }, 30000);
    await waitFor(
      async () =>
        (await send(`${cluster.url}/health/live`, null, { method: 'GET' })).status === 200,
      10000,
    );
  } catch (err) {
    await cluster.kill().catch(() => undefined);
    throw err;
  }
  return cluster;
}

export async function waitFor(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Answered ingest requests so far per pm2 worker (`pm_id`), from the cluster-wide /metrics
 * (`ingest_requests_total`, every status, by its `worker` label).
 */
export function requestsByWorker(url: string): Promise<Map<string, number>> {
  return metricByLabel(url, 'ingest_requests_total', 'worker');
}
