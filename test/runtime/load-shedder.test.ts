import { describe, expect, it } from '@jest/globals';
import {
  LoadShedder,
  MIN_SHARE,
  PRESSURE_SAMPLES,
  TURN_MIN_REQUESTS,
} from '../../src/runtime/load-shedder.js';

const admits = (s: LoadShedder) => s.refusal() === undefined;
const admitted = (s: LoadShedder, n: number) =>
  Array.from({ length: n }, () => admits(s)).filter(Boolean).length;
/** Samples under pressure enough to halve the share `halvings` times from where it is. */
const pressure = (s: LoadShedder, halvings: number) => {
  for (let i = 0; i < PRESSURE_SAMPLES - 1 + halvings; i++) s.sample(true);
};

describe('LoadShedder', () => {
  it('admits everything until the worker is under pressure', () => {
    const s = new LoadShedder();
    expect(admitted(s, 100)).toBe(100);
  });

  it('halves the admitted share per sample under pressure, never below MIN_SHARE', () => {
    const s = new LoadShedder();
    pressure(s, 1);
    expect(s.share).toBe(0.5);
    expect(admitted(s, 100)).toBe(50);
    s.sample(true);
    expect(admitted(s, 100)).toBe(25);
    for (let i = 0; i < 20; i++) s.sample(true);
    expect(s.share).toBe(MIN_SHARE);
    // Some work always goes on: one in 32, spread evenly.
    const pattern = Array.from({ length: 64 }, () => admits(s));
    expect(pattern.filter(Boolean)).toHaveLength(2);
    expect(pattern.indexOf(true)).toBe(31);
    expect(pattern.lastIndexOf(true)).toBe(63);
    expect(s.refusal()).toBe('event_loop');
  });

  it('counts pressure only from its PRESSURE_SAMPLES-th sample in a row: a lone stall is none', () => {
    expect(PRESSURE_SAMPLES).toBe(2);
    const s = new LoadShedder();
    for (let i = 0; i < 10; i++) {
      s.sample(true); // the window that held a stall
      s.sample(false);
    }
    expect(s.share).toBe(1);
    s.sample(true);
    s.sample(true);
    expect(s.share).toBe(0.5);
    s.sample(false);
    expect(s.share).toBe(1);
    expect(admitted(s, 100)).toBe(100);
  });

  it('once shedding, halves at each window over, even with windows under between them', () => {
    const s = new LoadShedder();
    pressure(s, 10);
    expect(s.share).toBe(MIN_SHARE);
    // A loop over and under by turns must not climb back to admitting everything.
    const shares: number[] = [];
    for (let i = 0; i < 4; i++) {
      s.sample(false);
      shares.push(s.share);
      s.sample(true);
      shares.push(s.share);
    }
    expect(shares).toEqual([1, 2, 3, 4].flatMap(() => [2 * MIN_SHARE, MIN_SHARE]));
  });

  it('doubles the share per sample once the pressure is gone, back to admitting everything', () => {
    const s = new LoadShedder();
    pressure(s, 10);
    const shares: number[] = [];
    while (s.share < 1) {
      s.sample(false);
      shares.push(s.share);
    }
    expect(shares).toEqual([1 / 16, 1 / 8, 1 / 4, 1 / 2, 1]);
    expect(admitted(s, 100)).toBe(100);
  });
});

describe('LoadShedder, the bound on a loop turn', () => {
  const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

  it('refuses the rest of a turn once it has run turnMs since its first check', async () => {
    let now = 1000;
    const s = new LoadShedder(100, () => now);
    expect(admits(s)).toBe(true); // the turn starts here
    now += 60;
    expect(admitted(s, TURN_MIN_REQUESTS - 2)).toBe(TURN_MIN_REQUESTS - 2);
    now += 40; // exactly turnMs: still within
    expect(admits(s)).toBe(true);
    now += 1;
    expect(s.refusal()).toBe('turn');
    expect(s.refusal()).toBe('turn');
    await nextTurn();
    // A new turn starts at its first check, however late.
    now += 5000;
    expect(admitted(s, TURN_MIN_REQUESTS)).toBe(TURN_MIN_REQUESTS);
    now += 100;
    expect(admits(s)).toBe(true);
    now += 1;
    expect(admits(s)).toBe(false);
  });

  it('lets the first TURN_MIN_REQUESTS of a turn through however long it runs', async () => {
    let now = 0;
    const s = new LoadShedder(100, () => now);
    // One slow request (a cold worker's first) and the few behind it in the same turn.
    expect(admits(s)).toBe(true);
    now += 400;
    expect(admitted(s, TURN_MIN_REQUESTS - 1)).toBe(TURN_MIN_REQUESTS - 1);
    expect(admits(s)).toBe(false);
    await nextTurn();
    expect(admits(s)).toBe(true);
  });

  it('bounds nothing with turnMs 0, and applies the share inside a turn as before', async () => {
    let now = 0;
    const off = new LoadShedder(0, () => now);
    now += 10_000;
    expect(admitted(off, 10)).toBe(10);

    const s = new LoadShedder(100, () => now);
    pressure(s, 1);
    expect(admitted(s, 100)).toBe(50);
    now += 101;
    expect(admitted(s, 100)).toBe(0);
    await nextTurn();
    expect(admitted(s, 100)).toBe(50);
  });
});
