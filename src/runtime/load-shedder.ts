/**
 * Load shedding by proportion (issue 17). A worker that sheds every new request while its event
 * loop is behind, and none once it has caught up, swings between the two: refused bodies are still
 * read to keep their connections (src/http/http-answers.ts, OVERLOAD_DRAIN_BYTES), so under a
 * spike the loop stays behind on the refusals alone and nothing is admitted for seconds, then
 * everything is and the loop falls behind again.
 *
 * Instead, the share of new requests admitted follows the pressure signal, one step per sample
 * (SHED_SAMPLE_MS): halved while the worker is under pressure, down to MIN_SHARE, so that some
 * work always goes on; doubled once it is not, so full throughput is back a few samples after a
 * spike ends. Admissions are spread evenly (a running credit, not a coin toss), so a 0.25 share
 * admits one request in four.
 *
 * Shedding starts only from the PRESSURE_SAMPLES-th sample in a row under pressure. One stall of
 * the worker (a host that deschedules the VM, a cold worker compiling its first request, a full
 * GC) puts at most one window over (event-loop-pressure.ts), however long it was, and is no
 * overload: the requests behind it are few, and the bound on a turn (below) refuses any queue it
 * left. Counted on one window, such stalls refused requests at ordinary load (docs/OPERATIONS.md,
 * "Overload"). An overload keeps every window behind.
 *
 * Samples come late, though, and the queue of an overload is not where a sample sees it. A client
 * that is ahead of the worker has whole requests waiting in the kernel's socket buffers, and one
 * event-loop turn reads each ready connection's request to its end (libuv reads up to 32 chunks
 * per callback) and serves it, admitted or refused, before the next connection's: measured under
 * a 3× spike on 512 connections, a turn served hundreds of requests and lasted up to a second,
 * with almost no request open in the worker between turns. Every request in a turn waits for those
 * before it, and the sampling timers run only between turns. So the turn is bounded as it runs: once
 * `turnMs` (SHED_EVENT_LOOP_TURN_MS) has passed since the turn's first admission check, the rest of
 * its new requests are refused, at ~0.1 ms each against ~0.6 ms to serve one, and the next turn
 * starts afresh. A turn's first TURN_MIN_REQUESTS are never refused by it: one slow request (a
 * worker's first ones, before the JIT has compiled the path; a garbage collection) does not make
 * an overload, and without this a worker started by `pm2 reload` under steady load at 4
 * connections refused the requests that came in the same turn as its first, slow one. Under a 3×
 * spike a 50 ms bound (the default) took the 200s' p99 over the spike from 0.6–1.8 s to 0.10–0.16 s,
 * and 100 ms to 0.19–0.51 s (docs/performance-notes.md). A worker under ordinary load never gets
 * near it: a turn there serves a handful of requests in a few milliseconds.
 */
export const MIN_SHARE = 1 / 32;
/** Requests of a turn that the bound on a turn lets through whatever the turn's length. */
export const TURN_MIN_REQUESTS = 8;
/** Samples under pressure in a row before shedding starts. */
export const PRESSURE_SAMPLES = 2;

/** Why the shedder refuses a request: the sampled signal, or the bound on a turn. */
export type ShedReason = 'event_loop' | 'turn';
/**
 * The checks that refuse an ingest request for load (503 `overloaded`) before it is read: the
 * shedder's and the worker's MAX_IN_FLIGHT. (The decoders' DECODER_MEMORY_BYTES refuses too, and
 * counts its own refusals: body-decoder.ts.)
 */
export type ShedCheck = ShedReason | 'in_flight';

export class LoadShedder {
  private admitShare = 1;
  private credit = 0;
  /** Samples under pressure in a row so far. */
  private pressured = 0;
  /** When the current turn's first admission check ran; -1: none yet in this turn. */
  private turnStart = -1;
  /** Admission checks in the current turn. */
  private turnChecks = 0;
  private readonly endTurn = (): void => {
    this.turnStart = -1;
    this.turnChecks = 0;
  };

  /**
   * `turnMs`: refuse the rest of a turn's requests after this long (0: no bound). `now`: the
   * clock, in milliseconds.
   */
  constructor(
    private readonly turnMs = 0,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** The share of new requests admitted now (1: all). */
  get share(): number {
    return this.admitShare;
  }

  /** One sample of the pressure signal. */
  sample(underPressure: boolean): void {
    if (underPressure) {
      // Shedding starts from the PRESSURE_SAMPLES-th window in a row; once it has, each window
      // over halves again (a loop over and under by turns must not climb back to everything).
      if (++this.pressured < PRESSURE_SAMPLES && this.admitShare === 1) return;
      this.admitShare = Math.max(MIN_SHARE, this.admitShare / 2);
    } else {
      this.pressured = 0;
      this.admitShare = Math.min(1, this.admitShare * 2);
      if (this.admitShare === 1) this.credit = 0;
    }
  }

  /** Why to refuse the next request, or undefined to admit it. */
  refusal(): ShedReason | undefined {
    if (this.turnMs > 0 && this.turnIsOver()) return 'turn';
    if (this.admitShare === 1) return undefined;
    this.credit += this.admitShare;
    if (this.credit < 1) return 'event_loop';
    this.credit -= 1;
    return undefined;
  }

  /**
   * True once the current turn has run `turnMs` since its first check and has had more than
   * TURN_MIN_REQUESTS checks. The turn ends at the loop's check phase, which follows the poll
   * phase where connections are read.
   */
  private turnIsOver(): boolean {
    if (this.turnStart < 0) {
      this.turnStart = this.now();
      setImmediate(this.endTurn);
    }
    return ++this.turnChecks > TURN_MIN_REQUESTS && this.now() - this.turnStart > this.turnMs;
  }
}
