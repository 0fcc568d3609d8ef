/**
 * How many long lines a worker reads at once (LONG_LINE_MEMORY_BYTES).
 *
 * A line that straddles body chunks is copied until its LF arrives, up to MAX_LINE_BYTES (1 MiB)
 * per request. Ordinary lines are a few hundred bytes, but nothing stops every request in flight
 * (MAX_IN_FLIGHT, 256 per worker) from holding a 1 MiB line at once: `npm run bench:memory` took
 * a worker from 118 to 222 MiB with 64 such requests, and 256 would need ~400 MiB more.
 *
 * So a request whose copy of its partial line grows past LONG_LINE_BYTES (64 KiB) reserves room
 * for a whole line (MAX_LINE_BYTES + 2) before it reads on. While the reservations already held fill the budget,
 * it waits: its body is paused (TCP pushes back on the client) and its body timers stop, so a
 * wait is not taken for a slow client. A reservation is held until the transform lets go of the
 * copy (once the long line is scanned) or the request ends.
 *
 * No deadlock: a request that holds a reservation never waits for another, so the long lines
 * being read always finish (or their requests fail) and hand their room on; the first request to
 * wait is served first; and one reservation is granted whatever its size, so a budget smaller
 * than one line still lets long lines through, one at a time. Ordinary requests never wait.
 */

export { LONG_LINE_BYTES } from './core/ndjson-csv.js';

export class LongLineBudget {
  /** Bytes reserved by the long lines being read. */
  reserved = 0;
  /** Requests that had to wait for room, since start (for /metrics). */
  waits = 0;
  private readonly queue: { bytes: number; grant: () => void }[] = [];

  constructor(readonly capacity: number) {}

  /** Requests waiting for room now. */
  get waiting(): number {
    return this.queue.length;
  }

  /** Reserves `bytes` now if they fit (and no one waits before), else returns false. */
  tryReserve(bytes: number): boolean {
    if (this.queue.length > 0 || !this.fits(bytes)) return false;
    this.reserved += bytes;
    return true;
  }

  /**
   * Waits in line for `bytes`: `grant` runs once they are reserved. Returns a function that leaves
   * the line (a request that fails meanwhile); it does nothing once granted.
   */
  wait(bytes: number, grant: () => void): () => void {
    const entry = { bytes, grant };
    this.queue.push(entry);
    this.waits++;
    return () => {
      const i = this.queue.indexOf(entry);
      if (i >= 0) {
        this.queue.splice(i, 1);
        this.grantWaiting(); // the next one may fit where this one did not
      }
    };
  }

  release(bytes: number): void {
    this.reserved -= bytes;
    this.grantWaiting();
  }

  private fits(bytes: number): boolean {
    return this.reserved === 0 || this.reserved + bytes <= this.capacity;
  }

  private grantWaiting(): void {
    while (this.queue.length > 0 && this.fits(this.queue[0].bytes)) {
      const next = this.queue.shift()!;
      this.reserved += next.bytes;
      next.grant();
    }
  }
}
