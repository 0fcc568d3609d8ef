/**
 * Kernel instances are taken per scan and given back at once, so a worker keeps one per set of
 * options however many requests are in flight, and an instance grown for a long line is not kept
 * (issue 13, item 8: WebAssembly memory never shrinks).
 */
import { describe, expect, it } from '@jest/globals';
import { NdjsonCsvTransform, kernelPoolStats } from '../../src/ingest/core/ndjson-csv.js';

const COLUMNS = ['a', 'b'];

describe('kernel instance pool', () => {
  it('64 interleaved transforms share one idle instance', () => {
    const options = { columns: COLUMNS, eol: 'lf' as const, maxLineBytes: 1 << 20 };
    const transforms = Array.from({ length: 64 }, () => new NdjsonCsvTransform(options));
    const out: string[] = transforms.map(() => '');
    for (let round = 0; round < 3; round++) {
      transforms.forEach((t, i) => {
        out[i] += t.push(Buffer.from(`{"a":${i},"b":${round}}\n{"a":"x`)).toString();
        out[i] += t.push(Buffer.from(`y"}\n`)).toString();
      });
    }
    transforms.forEach((t, i) => {
      out[i] += t.end().toString();
      expect(out[i]).toBe(`${i},0\nxy,\n${i},1\nxy,\n${i},2\nxy,\n`);
      expect(t.valid).toBe(6);
    });
    const key = kernelPoolStats();
    expect(key.instances).toBeGreaterThanOrEqual(1);
    // One instance for these options (others may be there from other option sets of this file).
    expect(key.instances).toBeLessThanOrEqual(2);
  });

  it('an instance grown for a line longer than its area is not kept', () => {
    const before = kernelPoolStats().bytes;
    const t = new NdjsonCsvTransform({ columns: ['a'], eol: 'lf', maxLineBytes: 8 << 20 });
    const long = `{"a":"${'z'.repeat(3 << 20)}"}\n`;
    const rows = t.push(Buffer.from(long));
    expect(rows.length).toBe((3 << 20) + 1);
    t.end();
    // A fresh instance is ~6 MB; the grown one would be ~20 MB.
    expect(kernelPoolStats().bytes - before).toBeLessThan(12 << 20);
  });

  it('a transform that was released refuses more input', () => {
    const t = new NdjsonCsvTransform({ columns: COLUMNS, eol: 'lf', maxLineBytes: 1024 });
    t.release();
    expect(() => t.push(Buffer.from('{"a":1}\n'))).toThrow(/ended/);
  });
});
