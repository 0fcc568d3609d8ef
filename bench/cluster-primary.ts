/**
 * The node:cluster primary shared by the ceiling and the naive servers: one worker per core (as
 * pm2 `instances: max` does for the service), the same round-robin connection scheduling as pm2's
 * cluster mode, and a report of the worker pids to the benchmark over IPC once every worker
 * listens, so the benchmark can read their CPU time.
 */
import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';

export interface ClusterReady {
  ready: true;
  primary: number;
  workers: number[];
}

/** Forks the workers; resolves when all of them listen. Call only in the primary. */
export function runPrimary(count = Number(process.env.WORKERS ?? availableParallelism())): void {
  let listening = 0;
  const workers = Array.from({ length: count }, () => cluster.fork());
  cluster.on('listening', () => {
    if (++listening === count) {
      const ready: ClusterReady = {
        ready: true,
        primary: process.pid,
        workers: workers.map((w) => w.process.pid ?? 0),
      };
      process.send?.(ready);
    }
  });
  cluster.on('exit', (worker, code, signal) => {
    if (!stopping) {
      process.stderr.write(`worker ${worker.process.pid} exited (${code ?? signal})\n`);
      process.exitCode = 1;
    }
  });
  let stopping = false;
  const stop = () => {
    stopping = true;
    for (const w of workers) w.process.kill('SIGTERM');
    setTimeout(() => process.exit(), 2000).unref();
    cluster.on('exit', () => {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit();
    });
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  // The benchmark went away without stopping us.
  process.once('disconnect', stop);
}
