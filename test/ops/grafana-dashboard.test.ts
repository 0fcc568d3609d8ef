/**
 * ops/grafana/ndjson-ingest.dashboard.json: valid JSON, importable (data source as the
 * DS_PROMETHEUS input/variable), the panels operators need, each per worker and in total, and
 * queries that only name metrics the service exports (SPEC §3).
 */
import client from 'prom-client';
import {
  aggregatesWorkerAway,
  allPanels,
  allQueries,
  keepsWorker,
  loadDashboard,
  metricNames,
  type Panel,
} from './dashboard-queries.js';

/** SPEC §3 "GET /metrics", plus the disk gauge the service adds and Prometheus's own `up`. */
const SPEC_METRICS = {
  counters: [
    'ingest_received_bytes_total',
    'ingest_decoded_bytes_total',
    'ingest_records_total',
    'ingest_requests_total',
    'csv_written_bytes_total',
  ],
  gauges: ['ingest_in_flight_requests', 'csv_disk_free_bytes', 'up'],
  histograms: [
    'ingest_parse_duration_seconds',
    'ingest_request_duration_seconds',
    'csv_write_duration_seconds',
  ],
};

/** "the default Node.js process metrics" of SPEC §3: what prom-client's collector exports. */
async function defaultMetricNames(): Promise<{ name: string; type: string }[]> {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const metrics = await registry.getMetricsAsJSON();
  registry.clear();
  return metrics.map((m) => ({ name: m.name, type: String(m.type) }));
}

function seriesNames(name: string, type: string): string[] {
  return type === 'histogram' ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name];
}

let allowed: Set<string>;
beforeAll(async () => {
  allowed = new Set([
    ...SPEC_METRICS.counters,
    ...SPEC_METRICS.gauges,
    ...SPEC_METRICS.histograms.flatMap((h) => seriesNames(h, 'histogram')),
    ...(await defaultMetricNames()).flatMap((m) => seriesNames(m.name, m.type)),
  ]);
});

const dashboard = loadDashboard();
const panels = allPanels(dashboard);
const DS = '${DS_PROMETHEUS}';

describe('the PromQL helpers', () => {
  test('metricNames finds selected metrics and nothing else', () => {
    expect(
      metricNames(
        'histogram_quantile(0.99, sum by (worker, le) (rate(a_bucket{job="$job", le=~"x"}[1m])))' +
          ' / on (instance) group_left b_total offset 5m + 1e3 * vector(0) or c:rule',
      ),
    ).toEqual(['a_bucket', 'b_total', 'c:rule']);
    expect(metricNames('label_values(ingest_in_flight_requests{job="$job"}, instance)')).toEqual([
      'ingest_in_flight_requests',
    ]);
    expect(metricNames('sum without (worker) (rate(nope_total[1m]))')).toEqual(['nope_total']);
  });

  test('aggregatesWorkerAway and keepsWorker tell totals from per-worker series', () => {
    expect(aggregatesWorkerAway('sum without (worker) (rate(x[1m]))')).toBe(true);
    expect(aggregatesWorkerAway('histogram_quantile(0.5, sum by (le) (rate(x[1m])))')).toBe(true);
    expect(aggregatesWorkerAway('min(x)')).toBe(true);
    expect(aggregatesWorkerAway('rate(x[1m])')).toBe(false);
    expect(aggregatesWorkerAway('sum by (worker, le) (rate(x[1m]))')).toBe(false);
    expect(keepsWorker('rate(x[1m])')).toBe(true);
    expect(keepsWorker('sum by (worker, status) (rate(x[1m]))')).toBe(true);
    expect(keepsWorker('sum by (status) (rate(x[1m]))')).toBe(false);
    expect(keepsWorker('sum without (worker) (x)')).toBe(false);
  });
});

describe('ops/grafana/ndjson-ingest.dashboard.json', () => {
  test('is an importable dashboard with a stable uid', () => {
    expect(dashboard.uid).toBe('ndjson-ingest');
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(dashboard.schemaVersion).toBeLessThanOrEqual(41);
    expect(dashboard.__inputs).toEqual([
      expect.objectContaining({
        name: 'DS_PROMETHEUS',
        type: 'datasource',
        pluginId: 'prometheus',
      }),
    ]);
    // Also a data source variable of that name, so that the file works when provisioned as is
    // (provisioning does not substitute __inputs).
    expect(dashboard.templating.list).toContainEqual(
      expect.objectContaining({ name: 'DS_PROMETHEUS', type: 'datasource', query: 'prometheus' }),
    );
  });

  test('every panel and target queries ${DS_PROMETHEUS}', () => {
    const wrong: string[] = [];
    for (const p of panels) {
      if (p.type === 'row') continue;
      if (p.datasource?.uid !== DS) wrong.push(p.title);
      for (const t of p.targets ?? [])
        if (t.datasource?.uid !== DS) wrong.push(`${p.title}/${t.refId}`);
    }
    for (const v of dashboard.templating.list) {
      if (v.type === 'query' && v.datasource?.uid !== DS) wrong.push(`variable ${v.name}`);
    }
    expect(wrong).toEqual([]);
  });

  test('panel ids are unique and panels do not overlap', () => {
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const cells = new Map<string, string>();
    const overlaps: string[] = [];
    for (const p of panels) {
      const { x, y, w, h } = p.gridPos;
      expect(x + w).toBeLessThanOrEqual(24);
      for (let i = x; i < x + w; i++) {
        for (let j = y; j < y + h; j++) {
          const other = cells.get(`${i},${j}`);
          if (other) overlaps.push(`${p.title} / ${other}`);
          cells.set(`${i},${j}`, p.title);
        }
      }
    }
    expect([...new Set(overlaps)]).toEqual([]);
  });

  test('every query names only metrics of SPEC §3, csv_disk_free_bytes and up', () => {
    const unknown: string[] = [];
    for (const { where, expr } of allQueries(dashboard)) {
      const names = metricNames(expr);
      if (names.length === 0) unknown.push(`${where}: no metric in ${expr}`);
      for (const n of names) if (!allowed.has(n)) unknown.push(`${where}: ${n}`);
    }
    expect(unknown).toEqual([]);
    // The allow-list is not everything: a misspelt name is caught.
    expect(allowed.has('ingest_received_bytes')).toBe(false);
    expect(allowed.has('ingest_records_total')).toBe(true);
  });

  test('a dataset variable filters every per-request series, and a graph shows each dataset', () => {
    const perRequest = SPEC_METRICS.counters.concat(
      SPEC_METRICS.histograms.map((h) => `${h}_bucket`),
    );
    const unfiltered = allQueries(dashboard)
      .filter(({ expr }) => metricNames(expr).some((n) => perRequest.includes(n)))
      .filter(
        ({ where, expr }) => !where.startsWith('variable') && !expr.includes('dataset=~"$dataset"'),
      )
      .map(({ where }) => where);
    expect(unfiltered).toEqual([]);
    expect(dashboard.templating.list).toContainEqual(
      expect.objectContaining({ name: 'dataset', includeAll: true, multi: true }),
    );
    const byDataset = panels.find((p) =>
      (p.targets ?? []).some(
        (t) =>
          /sum by \(dataset, result\)/.test(t.expr) && /\{\{dataset\}\}/.test(t.legendFormat ?? ''),
      ),
    );
    expect(byDataset?.type).toBe('timeseries');
  });

  test('rates over 1m, as SPEC §3 defines bytes per second', () => {
    const other = allQueries(dashboard)
      .flatMap(({ where, expr }) =>
        [...expr.matchAll(/rate\([^[]*\[([^\]]+)\]/g)].map((m) => [where, m[1]]),
      )
      .filter(([where, range]) => range !== '1m' && !where.startsWith('5xx share'));
    expect(other).toEqual([]);
  });

  interface Wanted {
    what: string;
    metric: string;
    quantiles?: number[];
    legend?: RegExp;
    unit: string;
  }
  const WANTED: Wanted[] = [
    { what: 'bytes/s received', metric: 'ingest_received_bytes_total', unit: 'binBps' },
    {
      what: 'records/s, valid vs invalid',
      metric: 'ingest_records_total',
      legend: /\{\{result\}\}/,
      unit: 'short',
    },
    {
      what: 'request latency p50/p90/p99',
      metric: 'ingest_request_duration_seconds_bucket',
      quantiles: [0.5, 0.9, 0.99],
      unit: 's',
    },
    {
      what: 'parse latency p99',
      metric: 'ingest_parse_duration_seconds_bucket',
      quantiles: [0.99],
      unit: 's',
    },
    { what: 'in-flight requests', metric: 'ingest_in_flight_requests', unit: 'short' },
    {
      what: 'requests/s by status',
      metric: 'ingest_requests_total',
      legend: /\{\{status\}\}/,
      unit: 'reqps',
    },
    {
      what: 'CSV write latency',
      metric: 'csv_write_duration_seconds_bucket',
      quantiles: [0.99],
      unit: 's',
    },
    { what: 'CSV disk free', metric: 'csv_disk_free_bytes', unit: 'bytes' },
  ];

  function graphOf(metric: string): Panel | undefined {
    return panels.find(
      (p) =>
        p.type === 'timeseries' &&
        (p.targets ?? []).length > 0 &&
        (p.targets ?? []).every((t) => metricNames(t.expr).includes(metric)),
    );
  }

  test.each(WANTED)('a graph of $what, per worker and in total', (w) => {
    const panel = graphOf(w.metric);
    expect(panel).toBeDefined();
    const targets = panel!.targets!;
    expect(panel!.fieldConfig?.defaults?.unit).toBe(w.unit);

    const perWorker = targets.filter(
      (t) => /\{\{worker\}\}/.test(t.legendFormat ?? '') && keepsWorker(t.expr),
    );
    const totals = targets.filter(
      (t) => !/\{\{worker\}\}/.test(t.legendFormat ?? '') && aggregatesWorkerAway(t.expr),
    );
    expect(perWorker.length).toBeGreaterThan(0);
    expect(totals.length).toBeGreaterThan(0);
    // Every target is one or the other: no series whose legend hides which worker it is.
    expect(perWorker.length + totals.length).toBe(targets.length);

    if (w.legend) for (const t of targets) expect(t.legendFormat).toMatch(w.legend);
    for (const q of w.quantiles ?? []) {
      const total = totals.find((t) => t.expr.startsWith(`histogram_quantile(${q},`));
      expect(total?.expr).toMatch(/sum by \(le\) \(rate\([a-z_]+_bucket\{/);
    }
  });

  test('bytes/s is rate(ingest_received_bytes_total[1m]), per worker and summed without worker', () => {
    const exprs = graphOf('ingest_received_bytes_total')!.targets!.map((t) => t.expr);
    expect(exprs).toContainEqual(
      expect.stringMatching(
        /^sum without \(worker\) \(rate\(ingest_received_bytes_total\{.*\}\[1m\]\)\)$/,
      ),
    );
    expect(exprs).toContainEqual(
      expect.stringMatching(/^rate\(ingest_received_bytes_total\{.*\}\[1m\]\)$/),
    );
  });

  test('queries filter on the job, instance and worker variables', () => {
    const vars = dashboard.templating.list.map((v) => v.name);
    expect(vars).toEqual(expect.arrayContaining(['job', 'instance', 'worker']));
    const unfiltered = panels
      .flatMap((p) => (p.targets ?? []).map((t) => ({ p, t })))
      .filter(
        ({ t }) => !t.expr.includes('job="$job"') || !t.expr.includes('instance=~"$instance"'),
      )
      .map(({ p, t }) => `${p.title}/${t.refId}`);
    expect(unfiltered).toEqual([]);
  });
});
