/**
 * The sampled signal's reading of one window, on the real event loop and Node's real monitors:
 * the loop is held with a busy wait, as a long synchronous task or a stall would hold it.
 */
import { describe, expect, it } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import { EventLoopPressure, RESOLUTION_MS } from '../../src/runtime/event-loop-pressure.js';

function busy(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

describe('EventLoopPressure', () => {
  it('reads an idle window as under the delay threshold', async () => {
    const p = new EventLoopPressure(50, 0);
    await sleep(20 * RESOLUTION_MS);
    p.read();
    await sleep(20 * RESOLUTION_MS);
    expect(p.read()).toBe(false);
  });

  it('reads a window the loop stood still through as over, by its own length', async () => {
    const p = new EventLoopPressure(50, 0);
    await sleep(5 * RESOLUTION_MS);
    p.read();
    // The monitor cannot run before the window ends: it has no sample of it.
    busy(200);
    expect(p.read()).toBe(true);
    // The stall is counted in that window only.
    await sleep(20 * RESOLUTION_MS);
    expect(p.read()).toBe(false);
  });

  it('reads a window whose monitor recorded a stall as over, and the next as under', async () => {
    const p = new EventLoopPressure(50, 0);
    await sleep(5 * RESOLUTION_MS);
    p.read();
    await sleep(3 * RESOLUTION_MS); // the monitor runs, then a stall begins
    busy(300);
    await sleep(1); // the monitor, due long ago, runs before this timer and records the stall
    expect(p.read()).toBe(true);
    await sleep(20 * RESOLUTION_MS);
    expect(p.read()).toBe(false);
  });

  it('reads utilization against its own threshold, with the delay off', async () => {
    const p = new EventLoopPressure(0, 0.5);
    p.read();
    await sleep(100);
    expect(p.read()).toBe(false);
    busy(100);
    expect(p.read()).toBe(true);
  });

  it('reads nothing as over with both thresholds off', () => {
    const p = new EventLoopPressure(0, 0);
    busy(100);
    expect(p.read()).toBe(false);
  });
});
