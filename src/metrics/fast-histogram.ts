/**
 * A histogram for the ingest hot path, registered in a prom-client Registry like any metric
 * (same exposition, same JSON for the cluster scrape), but observed with a bounds walk and three
 * additions into preallocated arrays.
 *
 * Why not prom-client's Histogram: its `observe` converts labels, validates them, hashes them and
 * looks the series up in an object keyed by the bucket bound's string on every call. Loading two
 * copies of the service side by side (one with METRICS_ENABLED=false) showed ~5 % more CPU per
 * request with its three histograms, and the cost went away without them (bench/metrics.bench.ts,
 * BENCHMARKS.md). These histograms have no labels, so none of that work is needed.
 */
import type { Metric, Registry } from 'prom-client';

interface Sample {
  labels: Record<string, string | number>;
  value: number;
  metricName: string;
  exemplar?: null;
}

/** What prom-client's registry reads from a metric's `get()` (text and JSON exposition). */
export interface HistogramSnapshot {
  name: string;
  help: string;
  type: 'histogram';
  values: Sample[];
  aggregator: 'sum';
}

/** One series of a histogram (one value of its label). */
export class HistogramSeries {
  /** Observations per bucket (not cumulative); the last slot counts values above every bound. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]) i++;
    this.counts[i]++;
    this.sum += value;
    this.count++;
  }
}

/**
 * At most one label (the dataset): the caller looks its series up once per request with
 * `labels(value)` and observes into it.
 */
export class FastHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly series = new Map<string, HistogramSeries>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly bounds: readonly number[],
    registry: Registry,
    /** The label that tells series apart; none: one series. */
    private readonly labelName?: string,
  ) {
    for (let i = 1; i < bounds.length; i++) {
      if (!(bounds[i] > bounds[i - 1])) throw new Error(`${name}: buckets must increase`);
    }
    // Like prom-client: a histogram without labels shows its zero series before any observation.
    if (labelName === undefined) this.labels('');
    registry.registerMetric(this as unknown as Metric);
  }

  /** The series of one label value (created on first use). */
  labels(value: string): HistogramSeries {
    let s = this.series.get(value);
    if (s === undefined) {
      s = new HistogramSeries(this.bounds);
      this.series.set(value, s);
    }
    return s;
  }

  /** Observes into the series without a label value (a histogram without a label). */
  observe(value: number): void {
    this.labels('').observe(value);
  }

  /** The series in prom-client's shape: cumulative `le` buckets, then `+Inf`, `_sum`, `_count`. */
  get(): HistogramSnapshot {
    const bucket = `${this.name}_bucket`;
    const values: Sample[] = [];
    for (const [key, s] of this.series) {
      const own: Record<string, string> =
        this.labelName === undefined ? {} : { [this.labelName]: key };
      let cumulative = 0;
      this.bounds.forEach((le, i) => {
        cumulative += s.counts[i];
        values.push({
          labels: { le, ...own },
          value: cumulative,
          metricName: bucket,
          exemplar: null,
        });
      });
      values.push(
        { labels: { le: '+Inf', ...own }, value: s.count, metricName: bucket, exemplar: null },
        { labels: own, value: s.sum, metricName: `${this.name}_sum` },
        { labels: own, value: s.count, metricName: `${this.name}_count` },
      );
    }
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      values,
      aggregator: this.aggregator,
    };
  }

  reset(): void {
    for (const s of this.series.values()) {
      s.counts.fill(0);
      s.sum = 0;
      s.count = 0;
    }
  }
}
