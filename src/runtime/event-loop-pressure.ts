/**
 * The sampled signal of load shedding (issue 17): at each SHED_SAMPLE_MS, whether the event loop's
 * mean delay (SHED_EVENT_LOOP_DELAY_MS) or its utilization (SHED_EVENT_LOOP_UTILIZATION) over the
 * window just ended was above its threshold. A threshold of 0 is off.
 *
 * Node's delay monitor records the time between two runs of its own timer: ~10 ms on an idle loop
 * with a 10 ms timer, hence the resolution taken off. It does not record the first interval after
 * a reset (it has no start for it), and this sampler resets it at each window's end. So:
 * - a stall that begins after the monitor's first run in a window is recorded, in the window
 *   where the monitor runs next, if that comes before the window's end;
 * - a stall that begins before the monitor's first run in a window and lasts to the window's end
 *   leaves the window without a sample, and its reading is then its own length: the loop stood
 *   still through it;
 * - one that ends sooner, or begins after the monitor's last run in the window, is not seen.
 * One stall thus puts at most one window over the threshold, which the shedder does not count as
 * an overload on its own (load-shedder.ts, PRESSURE_SAMPLES); an overload keeps every window
 * behind. The windows are at least SHED_SAMPLE_MS's minimum, 3 monitor periods, long.
 *
 * Read here rather than through @fastify/under-pressure, which the service used before: that
 * reads a window without a sample as an infinite delay, and gives no hook for each window's
 * reading, only whether the last one was over.
 */
import { monitorEventLoopDelay, performance, type EventLoopUtilization } from 'node:perf_hooks';

/** The delay monitor's timer (ms). */
export const RESOLUTION_MS = 10;

export class EventLoopPressure {
  private readonly delay = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  private utilization: EventLoopUtilization = performance.eventLoopUtilization();
  private windowStart = performance.now();

  constructor(
    private readonly maxDelayMs: number,
    private readonly maxUtilization: number,
  ) {
    if (maxDelayMs > 0) this.delay.enable();
  }

  /** Ends a window: whether it was over either threshold. */
  read(): boolean {
    const now = performance.now();
    const windowMs = now - this.windowStart;
    this.windowStart = now;
    const elu = performance.eventLoopUtilization();
    const utilization = performance.eventLoopUtilization(elu, this.utilization).utilization;
    this.utilization = elu;
    const delayMs = (this.delay.count > 0 ? this.delay.mean / 1e6 : windowMs) - RESOLUTION_MS;
    this.delay.reset();
    return (
      (this.maxDelayMs > 0 && delayMs > this.maxDelayMs) ||
      (this.maxUtilization > 0 && utilization > this.maxUtilization)
    );
  }
}
