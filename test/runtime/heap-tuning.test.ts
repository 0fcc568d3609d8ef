/**
 * The heap growth set at start-up (src/runtime/heap-tuning.ts): the command line wins, and a worker under
 * sustained load does its young-generation collections as scavenges, not as full mark-compacts.
 * The GC counts come from the service's own /metrics (prom-client's default
 * `nodejs_gc_duration_seconds`), as an operator would read them.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Agent } from 'node:http';
import { HEAP_GROWING_PERCENT, tuneHeapGrowth } from '../../src/runtime/heap-tuning.js';
import { gcCounts, send, startServer, type RunningServer } from '../support/server.js';
import { referenceBody } from '../support/taxi.js';

describe('tuneHeapGrowth', () => {
  it('leaves a percent given on the command line alone', () => {
    expect(tuneHeapGrowth(['--heap-growing-percent=0'])).toBeNull();
    expect(tuneHeapGrowth(['--max-old-space-size=512', '--heap_growing_percent=50'])).toBeNull();
  });

  it('sets its own percent otherwise', () => {
    expect(tuneHeapGrowth(['--max-old-space-size=512'])).toBe(HEAP_GROWING_PERCENT);
  });
});

describe('a worker under sustained load', () => {
  const { body } = referenceBody();
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  let s: RunningServer;

  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(async () => {
    agent.destroy();
    await s?.stop();
  });

  async function load(requests: number): Promise<void> {
    const lane = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const a = await send(`${s.url}/ingest`, body, { agent });
        expect(a.status).toBe(200);
      }
    };
    await Promise.all([0, 1, 2, 3].map(() => lane(requests / 4)));
  }

  it('collects its garbage with scavenges after an idle spell, not with full GCs', async () => {
    await load(100);
    // An idle spell, as between a night and a morning, is what most often left a worker with
    // V8's own heuristic in the state where every young-generation cycle is a full GC: 8, 18, 20
    // and 21 mark-compacts in the 800 requests below over four runs without the tuning, 0 in
    // every run with it.
    await new Promise((resolve) => setTimeout(resolve, 12000));
    const before = await gcCounts(s.url);
    await load(800);
    const after = await gcCounts(s.url);
    const minor = (after.minor ?? 0) - (before.minor ?? 0);
    const major = (after.major ?? 0) - (before.major ?? 0);
    // 800 requests stream ~470 MB through Buffers: dozens of young-generation collections.
    expect(minor).toBeGreaterThan(10);
    expect(major).toBeLessThanOrEqual(3);
  }, 120000);
});
