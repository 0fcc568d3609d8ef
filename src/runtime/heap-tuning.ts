/**
 * How V8 grows the old generation in a worker, set once at start-up.
 *
 * Why: this service keeps little on the JS heap (~19 MB live) while every request streams
 * ~0.6 MB through short-lived Buffers. V8 sizes the next old-generation limit from the live size
 * times a factor it derives from its own GC and allocation speeds, and after a GC asked to reduce
 * memory (V8's memory reducer runs those after an idle spell) it uses the minimum, 1.1
 * (`HeapGrowingMode::kMinimal` in V8's heap-controller.cc). With ~19 MB live that leaves ~2 MB of
 * headroom, less than the young generation. From then on every young-generation cycle ends in a full mark-compact instead
 * of a scavenge, and the worker stays there. Whether a worker falls into that state depends on
 * its history (an idle spell of ~10 s was the surest way in), so identical workers side by side
 * measured 1.4–2.0 or 2.4–3.8 ms of CPU per request, with 2–4 or ~60 mark-compacts per 2,000
 * requests. A fixed factor of 3 keeps every worker out of it: `npm run bench:gc` measured 1.93 ms
 * against 3.05 (37 % less CPU per request), no full GC against 23–25 per 1,000 requests, and a
 * lower peak RSS (133–138 MiB against 147–152). Details in docs/performance-notes.md ("Garbage collection
 * was the largest single cost").
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
