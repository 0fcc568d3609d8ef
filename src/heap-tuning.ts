/**
 * How V8 grows the old generation in a worker, set once at start-up.
 *
 * Why: this service keeps little on the JS heap (~19 MB live) while every request streams
 * ~0.6 MB through short-lived Buffers. V8 sizes the next old-generation limit from the live size
 * times a factor it derives from its own GC and allocation speeds; with so little old-generation
 * allocation that factor often falls to its minimum, 1.1, leaving ~2 MB of headroom, less than the
 * young generation. From then on every young-generation cycle ends in a full mark-compact instead
 * of a scavenge, and the worker stays there. Which state a worker lands in depends on its first
 * seconds, so identical workers measured 1.9–2.4 or 3.0–3.8 ms of CPU per request side by side
 * (~60 mark-compacts per 2,000 requests against 2–4). A fixed factor of 3 keeps every worker in
 * the good state: 2–4 mark-compacts per 2,000 requests, ~35 % less CPU per request, and a lower
 * peak RSS (110–135 MiB against 145–151). Figures and the command in BENCHMARKS.md
 * ("Garbage collection").
 *
 * V8 reads `--heap-growing-percent` whenever it computes a limit, so setting it at start-up
 * works whichever way the worker was started (pm2, `node dist/main.js`). A value given on the
 * command line (`node --heap-growing-percent=N`, pm2's `node_args`) wins; 0 restores V8's own
 * heuristic.
 */
import { setFlagsFromString } from 'node:v8';

/** The old generation may grow to (1 + 200 %) × its live size before the next full GC. */
export const HEAP_GROWING_PERCENT = 200;

/** Returns the percent in effect, or null when the command line set it. */
export function tuneHeapGrowth(execArgv: readonly string[] = process.execArgv): number | null {
  if (execArgv.some((arg) => /^--heap[-_]growing[-_]percent\b/.test(arg))) return null;
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  return HEAP_GROWING_PERCENT;
}
