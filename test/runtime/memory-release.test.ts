/** The idle full GC after a burst (src/runtime/memory-release.ts). */
import { describe, expect, it } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import { IdleMemoryRelease } from '../../src/runtime/memory-release.js';

describe('IdleMemoryRelease', () => {
  it('runs one full GC a second after the worker goes idle, holding more than the threshold', async () => {
    const release = new IdleMemoryRelease(() => 0, 0);
    // Garbage a full GC frees: 64 MiB of ArrayBuffers promoted by surviving a few scavenges.
    const held: (Buffer[] | null)[] = [Array.from({ length: 64 }, () => Buffer.alloc(1 << 20, 1))];
    for (let i = 0; i < 3; i++) Buffer.alloc(32 << 20); // churn the young generation
    held[0] = null;
    const before = process.memoryUsage().arrayBuffers;
    release.idle();
    await sleep(500);
    release.idle(); // a request came and went: the second restarts the wait
    await sleep(700);
    expect(release.runs).toBe(0);
    await sleep(600);
    expect(release.runs).toBe(1);
    expect(process.memoryUsage().arrayBuffers).toBeLessThan(before - (32 << 20));
    // At most one per 30 s.
    release.idle();
    await sleep(1200);
    expect(release.runs).toBe(1);
    release.stop();
  });

  it('does nothing while a request is in flight, or below the threshold', async () => {
    let inFlight = 1;
    const busy = new IdleMemoryRelease(() => inFlight, 0);
    busy.idle();
    const small = new IdleMemoryRelease(() => 0, Number.MAX_SAFE_INTEGER);
    small.idle();
    await sleep(1200);
    expect(busy.runs).toBe(0);
    expect(small.runs).toBe(0);
    inFlight = 0;
    busy.stop();
    small.stop();
  });
});
