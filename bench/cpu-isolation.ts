/**
 * CPU isolation for benchmarks whose client must outrun the server (bench:spike): the server's
 * processes go on one core, the client on the other, and the server's CPU can be capped with a
 * cgroup so that one client core can offer several times what the server takes. A server that is
 * slower than its clients is the case load shedding exists for; on a 2-core machine this is the
 * only way to make it without the client's own queue being what is measured.
 *
 * Linux only; `taskset` from util-linux. The cap needs root and a writable cgroup (v1 `cpu`
 * hierarchy or v2 with the cpu controller); without them the run says so and goes on uncapped.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

/** Pins every thread of each process (and what they fork later) to the given CPU list. */
export function pin(pids: number[], cpus: string): void {
  for (const pid of pids) {
    execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
  }
}

export interface CpuCap {
  /** What was done, for the report. */
  description: string;
  release(): void;
}

const PERIOD_US = 10_000;

/**
 * Caps the processes at `cores` of CPU time (a short period, 10 ms, so the cap throttles in small
 * slices rather than 100 ms stalls). Returns `{ unavailable: reason }` where it cannot.
 */
export function capCpu(pids: number[], cores: number): CpuCap | { unavailable: string } {
  const name = `ndjson-ingest-bench-${process.pid}`;
  const quota = String(Math.round(PERIOD_US * cores));
  try {
    const v1 = '/sys/fs/cgroup/cpu';
    const v2 = '/sys/fs/cgroup';
    let dir: string;
    if (existsSync(join(v1, 'cpu.cfs_quota_us'))) {
      dir = join(v1, name);
      mkdirSync(dir);
      writeFileSync(join(dir, 'cpu.cfs_period_us'), String(PERIOD_US));
      writeFileSync(join(dir, 'cpu.cfs_quota_us'), quota);
    } else if (readFileSync(join(v2, 'cgroup.controllers'), 'utf8').includes('cpu')) {
      dir = join(v2, name);
      mkdirSync(dir);
      writeFileSync(join(dir, 'cpu.max'), `${quota} ${PERIOD_US}`);
    } else {
      return { unavailable: 'no cgroup cpu controller' };
    }
    for (const pid of pids) writeFileSync(join(dir, 'cgroup.procs'), String(pid));
    return {
      description: `capped at ${cores} of a core (cgroup, ${quota} µs per ${PERIOD_US} µs)`,
      release() {
        // Processes still in it go back to the root group before it is removed.
        const root = dir.startsWith(v1) ? v1 : v2;
        for (const pid of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n')) {
          if (pid !== '') {
            try {
              writeFileSync(join(root, 'cgroup.procs'), pid);
            } catch {
              // It exited meanwhile.
            }
          }
        }
        rmdirSync(dir);
      },
    };
  } catch (err) {
    return { unavailable: (err as Error).message.split('\n')[0] };
  }
}

/** True when the machine has the two cores the split needs and taskset runs. */
export function canSplit(): boolean {
  if (process.platform !== 'linux' || availableParallelism() < 2) return false;
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
