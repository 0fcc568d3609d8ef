/** FastHistogram exposes exactly what prom-client's Histogram would for the same observations. */
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { Histogram, Registry } from 'prom-client';
import { FastHistogram } from '../../src/metrics/fast-histogram.js';
import { LATENCY_BUCKETS } from '../../src/metrics/ingest-metrics.js';

describe('FastHistogram', () => {
  it('gives the same exposition as prom-client with a dataset label', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.tuple(
            fc.constantFrom('trips', 'events', 'a_b'),
            fc.double({ min: 0, max: 20, noNaN: true }),
          ),
          { maxLength: 100 },
        ),
        async (values) => {
          const theirs = new Registry();
          const ours = new Registry();
          const h = new Histogram({
            name: 'y_seconds',
            help: 'y',
            buckets: LATENCY_BUCKETS,
            labelNames: ['dataset'],
            registers: [theirs],
          });
          const f = new FastHistogram('y_seconds', 'y', LATENCY_BUCKETS, ours, 'dataset');
          for (const [d, v] of values) {
            h.labels(d).observe(v);
            f.labels(d).observe(v);
          }
          expect(await ours.metrics()).toBe(await theirs.metrics());
        },
      ),
      { numRuns: 50 },
    );
  });

  it('gives the same exposition text and JSON as prom-client for any observations', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.oneof(
            fc.double({ min: 0, max: 20, noNaN: true }),
            fc.constantFrom(...LATENCY_BUCKETS),
          ),
          {
            maxLength: 200,
          },
        ),
        async (values) => {
          const theirs = new Registry();
          const ours = new Registry();
          theirs.setDefaultLabels({ worker: '3' });
          ours.setDefaultLabels({ worker: '3' });
          const h = new Histogram({
            name: 'x_seconds',
            help: 'x',
            buckets: LATENCY_BUCKETS,
            registers: [theirs],
          });
          const f = new FastHistogram('x_seconds', 'x', LATENCY_BUCKETS, ours);
          for (const v of values) {
            h.observe(v);
            f.observe(v);
          }
          expect(await ours.metrics()).toBe(await theirs.metrics());
          expect(await ours.getMetricsAsJSON()).toEqual(await theirs.getMetricsAsJSON());
        },
      ),
      { numRuns: 100 },
    );
  });

  it('counts a value equal to a bound in that bound (le is inclusive)', async () => {
    const r = new Registry();
    const f = new FastHistogram('y', 'y', [1, 2], r);
    f.observe(1);
    f.observe(2.5);
    expect(await r.metrics()).toContain(
      'y_bucket{le="1"} 1\ny_bucket{le="2"} 1\ny_bucket{le="+Inf"} 2',
    );
  });

  it('refuses buckets that do not increase', () => {
    expect(() => new FastHistogram('z', 'z', [1, 1], new Registry())).toThrow(
      'buckets must increase',
    );
  });
});
