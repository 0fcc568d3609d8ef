/** The worker's room for long lines (src/ingest/long-line-budget.ts), on its own. */
import { describe, expect, it } from '@jest/globals';
import { LongLineBudget } from '../../src/ingest/long-line-budget.js';

describe('LongLineBudget', () => {
  it('reserves while the room lasts, then queues in order and grants as room is handed on', () => {
    const b = new LongLineBudget(30);
    expect(b.tryReserve(10)).toBe(true);
    expect(b.tryReserve(10)).toBe(true);
    expect(b.tryReserve(10)).toBe(true);
    expect(b.tryReserve(10)).toBe(false);
    const granted: string[] = [];
    b.wait(10, () => granted.push('a'));
    b.wait(10, () => granted.push('b'));
    // Someone waiting goes first: a request arriving now does not jump the line.
    b.release(10);
    expect(granted).toEqual(['a']);
    expect(b.tryReserve(10)).toBe(false);
    b.release(10);
    expect(granted).toEqual(['a', 'b']);
    expect(b.reserved).toBe(30);
    expect(b.waiting).toBe(0);
    expect(b.waits).toBe(2);
  });

  it('always lets one line through, even one larger than the whole room', () => {
    const b = new LongLineBudget(5);
    expect(b.tryReserve(100)).toBe(true);
    expect(b.tryReserve(100)).toBe(false);
    let granted = false;
    b.wait(100, () => (granted = true));
    b.release(100);
    expect(granted).toBe(true);
    expect(b.reserved).toBe(100);
  });

  it('a request that leaves the line is never granted, and lets the next one in', () => {
    const b = new LongLineBudget(20);
    b.tryReserve(15);
    const granted: string[] = [];
    const leaveBig = b.wait(10, () => granted.push('big'));
    b.wait(5, () => granted.push('small'));
    expect(granted).toEqual([]); // the small one fits, but waits behind the big one
    leaveBig();
    expect(granted).toEqual(['small']);
    leaveBig(); // twice: nothing
    b.release(15);
    b.release(5);
    expect(granted).toEqual(['small']);
    expect(b.reserved).toBe(0);
  });
});
