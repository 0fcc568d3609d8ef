/**
 * Gives a burst's memory back once the worker goes idle: one full GC, at most every 30 s, when a
 * worker with no request in flight still holds more than 32 MiB of ArrayBuffers.
 *
 * Why: request buffers (a body's chunks, the transform's carry and output, the pending rows) live
 * as long as a request, so V8 promotes them to the old generation, which only a full GC frees.
 * With the heap growth of heap-tuning.ts a worker that has handled a burst of large requests and
 * then gets only ordinary ones runs no full GC for a long time, and glibc keeps the freed pages
 * of those buffers it never got back: after 64 concurrent bodies of ~1 MB lines, ~60–100 MiB of
 * dead ArrayBuffers stayed allocated and the worker's RSS stayed ~115 MiB above its start
 * (`npm run bench:memory`, issue 13). Transferring the largest buffers when a request ends
 * (ndjson-csv.ts `discard`) frees part of it at the next scavenge; this frees the rest, while
 * nothing else is running, so no request waits for it.
 *
 * Node has no public call for a GC: `--expose-gc` set at run time and the `gc` of a new context
 * is the documented way round (node:v8 setFlagsFromString); it changes nothing else.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export const RELEASE_ABOVE_BYTES = 32 * 1024 * 1024;
const IDLE_MS = 1000;
const MIN_INTERVAL_MS = 30_000;

function exposeGc(): (() => void) | null {
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? (gc as () => void) : null;
  } catch {
    return null;
  }
}

export class IdleMemoryRelease {
  /** Full GCs run so far (for tests and logs). */
  runs = 0;
  private readonly gc = exposeGc();
  private timer: NodeJS.Timeout | null = null;
  private last = -Infinity;

  constructor(
    /** Requests in flight in this worker. */
    private readonly inFlight: () => number,
    private readonly aboveBytes = RELEASE_ABOVE_BYTES,
  ) {}

  /** The worker's last request in flight ended: check once it has stayed idle for a second. */
  idle(): void {
    if (this.gc === null) return;
    if (this.timer === null) {
      this.timer = setTimeout(() => this.check(), IDLE_MS);
      this.timer.unref();
    } else {
      this.timer.refresh();
    }
  }

  private check(): void {
    if (this.inFlight() > 0) return; // the next idle() checks again
    const now = performance.now();
    if (now - this.last < MIN_INTERVAL_MS) return;
    if (process.memoryUsage().arrayBuffers < this.aboveBytes) return;
    this.last = now;
    this.runs++;
    this.gc!();
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
  }
}
