/**
 * glibc's heap trim threshold, which a worker can only check, not set.
 *
 * Why: each request body arrives as ~9 socket reads of 64 KiB, each copied into its own malloc'd
 * buffer that lives until the next scavenge (~13 MB of them per scavenge). By default glibc gives
 * the top of its heap back to the kernel once 128 KiB of it are free, and some workers settle into
 * freeing those buffers at the top of the heap and faulting the same pages in again for the next
 * requests: up to 130 minor page faults and ~0.2–0.4 ms more system CPU per request, where other
 * workers of the same cluster have 2–6. Which workers do is a matter of chance, like the GC state
 * in heap-tuning.ts. With a threshold of 32 MiB every worker stays at 2–6 (docs/performance-notes.md, "A
 * second per-worker state").
 *
 * glibc reads `MALLOC_TRIM_THRESHOLD_` only when a process starts, so it has to be in the
 * environment the worker is executed with: `npm start` (ecosystem.config.js sets it for
 * pm2-runtime, which forks the workers) and `npm run start:single` do that. pm2's `env` block is
 * applied inside a worker, after glibc has read its environment, so a worker of a pm2 daemon that
 * was started without it cannot have it. Such a worker says so once at start-up.
 */
import { readFileSync } from 'node:fs';

export const MALLOC_TRIM_THRESHOLD = 32 * 1024 * 1024;

/**
 * The environment a process was executed with (`/proc/<pid>/environ`), not `process.env`, which
 * pm2 rewrites in its workers after the start. Throws where there is no /proc.
 */
export function startEnvironment(pid: number | 'self' = 'self'): Map<string, string> {
  const entries = readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').filter(Boolean);
  return new Map(entries.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
}

/** Whether this process runs on glibc (Linux only; musl and others read no MALLOC_ variables). */
export function onGlibc(): boolean {
  if (process.platform !== 'linux') return false;
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } };
  return report?.header?.glibcVersionRuntime !== undefined;
}

/**
 * The value of `MALLOC_TRIM_THRESHOLD_` this process was executed with, or null. Undefined where
 * it does not apply: not Linux, or a C library other than glibc. The C library is only asked
 * about (a process report, a few milliseconds) when the variable is missing.
 */
export function mallocTrimThresholdAtStart(): string | null | undefined {
  if (process.platform !== 'linux') return undefined;
  let value: string | undefined;
  try {
    value = startEnvironment().get('MALLOC_TRIM_THRESHOLD_');
  } catch {
    return undefined;
  }
  if (value !== undefined) return value;
  return onGlibc() ? null : undefined;
}

/** A line for the start-up log when the threshold is missing, else null. */
export function mallocTrimNotice(atStart: string | null | undefined): string | null {
  if (atStart !== null) return null;
  return (
    `MALLOC_TRIM_THRESHOLD_ was not in this worker's environment when it started, so glibc's ` +
    `default applies; some workers then spend ~0.2–0.4 ms more system CPU per request on page ` +
    `faults. npm start sets it (${MALLOC_TRIM_THRESHOLD}); under a pm2 daemon, start the daemon ` +
    `with it (docs/OPERATIONS.md, "Running it")`
  );
}
