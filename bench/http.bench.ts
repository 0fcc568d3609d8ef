/**
 * npm run bench  (BENCH_QUICK=1 for a smoke run: 256 requests per run, 1 repeat)
 *
 * The original benchmark over HTTP: the reference body (16 × the sample, 1,600 records, 584,480
 * bytes), keep-alive, pipelining 1, 2,048 requests at concurrency 1, 2, 4 and 8 (k6/scenarios.json),
 * sent with autocannon to three servers in one run, interleaved; and the same loads for WRK_SECONDS
 * (default 2) each from wrk, a load generator in C that costs the shared cores far less CPU than
 * autocannon (BENCH_CLIENT=autocannon|wrk|both; both by default when wrk is installed):
 *
 * - service: the real ecosystem.config.js under pm2 (cluster, INSTANCES=max, metrics on), with its
 *   own PM2_HOME in a temporary folder, `pm2 kill`ed at the end;
 * - ceiling: bench/ceiling-server.ts, a node:http cluster that only drains the body;
 * - naive: bench/naive-server.ts, Nest + Fastify, buffered body, JSON.parse per line.
 *
 * and two variants of the service, to attribute its cost: no-metrics (METRICS_ENABLED=false) and
 * no-transform (the same build under pm2 with its transform replaced by a stub, bench/no-transform/:
 * what Nest, Fastify, pm2 and the request handling cost without any parsing).
 *
 * Writes the http section of BENCHMARKS.md, bench/results/report.html (charts) and
 * bench/results/http.json (quick runs: BENCHMARKS-quick.md, report-quick.html and http-quick.json
 * in bench/results, so a smoke run never overwrites a measurement), and checks that the
 * service wrote 1,600 rows for every 2xx answer. REPEATS (default 5), WARMUP (requests per server
 * and pass, at the lowest and the highest concurrency; default 2,048). The warm-up is long on
 * purpose: a freshly started worker, and the ceiling too, spend about twice the CPU per request
 * for their first ~2,000 requests (JIT, GC sizing, TCP buffers); the table is about steady state.
 */
import {
  createReadStream,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { referenceBody } from '../test/support/taxi.js';
import { escapeHtml, htmlPage, lineChart, type Series } from './html-report.js';
import { isAlive, loadScenarios, runLoad, runWrk, statsOf, wrkPath, type LoadRun } from './load.js';
import { procStat } from '../test/support/server.js';
import { requestsByWorker } from '../test/support/pm2.js';
import { machine, median, percentile, provenance } from './report.js';
import {
  NO_TRANSFORM_NODE_OPTIONS,
  startNodeCluster,
  startService,
  type BenchServer,
} from './servers.js';
import { writeSection } from './write-section.js';
import { tempDir } from '../test/support/server.js';

const QUICK = process.env.BENCH_QUICK === '1';
const REPEATS = QUICK ? 1 : Number(process.env.REPEATS ?? 5);
const WARMUP = QUICK ? 64 : Number(process.env.WARMUP ?? 2048);
const SETTLE_MS = 200;
const ROOT = new URL('..', import.meta.url);
const RESULTS = new URL('results/', import.meta.url);
const SUFFIX = QUICK ? '-quick' : '';
const REPORT_HTML = `bench/results/report${SUFFIX}.html`;
/**
 * `no-metrics`: the service with METRICS_ENABLED=false, to measure what metrics cost;
 * `no-transform`: the service without its transform, what everything around the parsing costs.
 */
const ALL_NAMES = [
  'service',
  'fsync',
  'typed',
  'no-metrics',
  'no-transform',
  'naive',
  'ceiling',
] as const;
type Name = (typeof ALL_NAMES)[number];
/** BENCH_SERVERS=service,fsync: only these (with the ceiling and naive the ratios need). */
const NAMES: readonly Name[] = process.env.BENCH_SERVERS
  ? ALL_NAMES.filter((n) =>
      [...process.env.BENCH_SERVERS!.split(','), 'service', 'ceiling', 'naive'].includes(n),
    )
  : ALL_NAMES;
const COLORS: Record<Name, string> = {
  service: '#1f5fbf',
  'no-metrics': '#2e9e5b',
  'no-transform': '#8e44ad',
  typed: '#c0392b',
  fsync: '#16a085',
  naive: '#d9730d',
  ceiling: '#6b6b6b',
};

const { body, source } = referenceBody();

type Client = 'autocannon' | 'wrk';
/** BENCH_CLIENT: autocannon, wrk or both (the default when wrk is installed). */
const CLIENTS: readonly Client[] = (() => {
  const want = process.env.BENCH_CLIENT ?? (wrkPath() === undefined ? 'autocannon' : 'both');
  if (!['autocannon', 'wrk', 'both'].includes(want)) {
    throw new Error(`BENCH_CLIENT=${want}: autocannon, wrk or both`);
  }
  if (want !== 'autocannon' && wrkPath() === undefined) {
    throw new Error(`BENCH_CLIENT=${want}, but wrk is not installed: apt-get install -y wrk`);
  }
  return want === 'both' ? ['autocannon', 'wrk'] : [want as Client];
})();
const WRK_SECONDS = QUICK ? 1 : Number(process.env.WRK_SECONDS ?? 2);

const TYPED_DATASETS = `datasets:
  trips:
    prefix: nyc_taxi_typed
    header: true
    columns:
      - { name: vendorid, type: int }
      - { name: tpep_pickup_datetime, type: datetime }
      - { name: trip_distance, type: float }
      - { name: total_amount, type: float }
      - { name: received_at, meta: received_at }
`;
const scenarios = loadScenarios();
const shapes = scenarios.shapes.map((s) => ({ ...s, requests: QUICK ? 256 : s.requests }));
const concurrencies = shapes.map((s) => s.concurrency);
const expected = scenarios.expect;

/** Every ingesting answer must report the whole body and 1,600 valid records. */
function verifyIngest(text: string): boolean {
  const s = statsOf(text);
  return (
    s?.bytes === body.length &&
    s.records?.valid === expected.valid &&
    s.records.invalid === expected.invalid &&
    s.records.total === expected.valid + expected.invalid
  );
}

/** The service without its transform reads the whole body and counts no record. */
function verifyNoTransform(text: string): boolean {
  const s = statsOf(text);
  return s?.bytes === body.length && s.records?.total === 0;
}

/** The ceiling only counts bytes. */
function verifyDrain(text: string): boolean {
  return statsOf(text)?.bytes === body.length;
}

/** The same checks for wrk, as text every 2xx answer must contain (bench/wrk/post.lua). */
function expectedText(name: Name): string {
  if (name === 'ceiling') return `"bytes":${body.length}}`;
  const valid = name === 'no-transform' ? 0 : expected.valid;
  const invalid = name === 'no-transform' ? 0 : expected.invalid;
  return `"bytes":${body.length},"records":{"valid":${valid},"invalid":${invalid},"total":${valid + invalid}}`;
}

interface Measured {
  server: Name;
  client: Client;
  concurrency: number;
  repeat: number;
  reqPerSec: number;
  mbPerSec: number;
  p50: number;
  p99: number;
  cpuPerRequest: number;
  /** Of it, system time (ms per request), and minor page faults per request of the workers. */
  sysPerRequest: number;
  faultsPerRequest: number;
  /**
   * The service only: how its keep-alive connections fell on its workers, from each worker's
   * answered requests in this run (`ingest_requests_total` by worker), e.g. "4/4" or "6/2".
   */
  split?: string;
  run: LoadRun;
}

/** Connections per worker, largest first, as "5/3": each worker's share of the requests × c. */
function splitOf(before: Map<string, number>, after: Map<string, number>, c: number): string {
  const done = [...after].map(([w, n]) => n - (before.get(w) ?? 0));
  const total = done.reduce((a, b) => a + b, 0);
  return done
    .map((n) => Math.round((n / total) * c))
    .sort((a, b) => b - a)
    .join('/');
}

const servers = new Map<Name, BenchServer>();
let serviceCsvDir = '';
const tempDirs: string[] = [];
let serviceAcknowledged = 0;
/** Requests wrk abandoned in flight at the end of its service runs, at most (its connections). */
let serviceAbandonedAtMost = 0;
let bodyFile = '';
let stopping: Promise<void> | undefined;

async function stopAll(): Promise<void> {
  stopping ??= (async () => {
    for (const s of servers.values()) {
      await s.stop().catch((err: unknown) => console.error(`stopping ${s.name}: ${String(err)}`));
    }
    servers.clear();
  })();
  return stopping;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping the servers`);
    void stopAll().then(() => process.exit(130));
  });
}

async function measure(
  name: Name,
  concurrency: number,
  amount: number,
  repeat: number,
  client: Client = 'autocannon',
) {
  const server = servers.get(name)!;
  const dead = server.workers.filter((pid) => !isAlive(pid));
  if (dead.length > 0) throw new Error(`${name}: worker(s) ${dead.join(', ')} are gone`);
  const byWorker = name === 'service' ? await requestsByWorker(server.url) : undefined;
  const procBefore = server.workers.map(procStat);
  const url = `${server.url}${scenarios.path}`;
  const run =
    client === 'wrk'
      ? await runWrk({
          url,
          bodyFile,
          connections: concurrency,
          seconds: WRK_SECONDS,
          expect: expectedText(name),
        })
      : await runLoad({
          url,
          body,
          connections: concurrency,
          amount,
          verifyBody:
            name === 'ceiling'
              ? verifyDrain
              : name === 'no-transform'
                ? verifyNoTransform
                : verifyIngest,
        });
  // Let work done after the answers (a log line, a commit's last step) land in this run's CPU.
  await new Promise((r) => setTimeout(r, SETTLE_MS));
  const procAfter = server.workers.map(procStat);
  const delta = (f: (p: ReturnType<typeof procStat>) => number) =>
    procAfter.reduce((n, p, i) => n + f(p) - f(procBefore[i]), 0) / run.requests;
  if (name === 'service') {
    serviceAcknowledged += run.ok;
    if (client === 'wrk') serviceAbandonedAtMost += concurrency;
  }
  const split =
    byWorker === undefined
      ? undefined
      : splitOf(byWorker, await requestsByWorker(server.url), concurrency);
  const latencies = Array.from(run.latencies);
  const m: Measured = {
    server: name,
    client,
    concurrency,
    repeat,
    reqPerSec: run.requests / run.seconds,
    mbPerSec: (run.ok * body.length) / run.seconds / 1e6,
    p50: run.percentiles?.p50 ?? percentile(latencies, 50),
    p99: run.percentiles?.p99 ?? percentile(latencies, 99),
    cpuPerRequest: delta((p) => p.userMs + p.systemMs),
    sysPerRequest: delta((p) => p.systemMs),
    faultsPerRequest: delta((p) => p.minorFaults),
    split,
    run,
  };
  const flags =
    run.non2xx + run.errors + run.mismatches > 0
      ? `  non-2xx ${run.non2xx}, errors ${run.errors}, bad bodies ${run.mismatches}`
      : '';
  console.log(
    `${repeat < 0 ? 'warm-up' : `repeat ${repeat + 1}`}  c${concurrency}  ${name.padEnd(7)}  ` +
      `${client === 'wrk' ? 'wrk  ' : ''}` +
      `${m.reqPerSec.toFixed(0).padStart(5)} req/s  ${m.mbPerSec.toFixed(1).padStart(6)} MB/s  ` +
      `p50 ${m.p50.toFixed(2)} ms  p99 ${m.p99.toFixed(2)} ms  CPU ${m.cpuPerRequest.toFixed(2)} ms/req` +
      ` (sys ${m.sysPerRequest.toFixed(2)}, ${m.faultsPerRequest.toFixed(1)} faults)` +
      `${split === undefined ? '' : `  connections ${split}`}${flags}`,
  );
  for (const b of run.badBodies.slice(0, 2)) console.log(`    bad body: ${b}`);
  return m;
}

/** Rows (LF-terminated lines) in the service's day files, and lines in its quarantine files. */
async function countServiceRows(): Promise<{ rows: number; quarantined: number; files: string[] }> {
  let rows = 0;
  let quarantined = 0;
  const files = existsSync(serviceCsvDir) ? readdirSync(serviceCsvDir) : [];
  const dayFiles = files.filter((f) => /^nyc_taxi-\d{4}-\d{2}-\d{2}\.csv$/.test(f));
  for (const f of files) {
    const isDay = dayFiles.includes(f);
    if (!isDay && !/\.quarantine\.ndjson$/.test(f)) continue;
    let n = 0;
    for await (const chunk of createReadStream(join(serviceCsvDir, f)) as AsyncIterable<Buffer>) {
      for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) n++;
    }
    if (isDay) rows += n;
    else quarantined += n;
  }
  return { rows, quarantined, files: dayFiles };
}

/** Warnings and errors in the service's pm2 logs (pino: level 40 and up). */
function serviceLogProblems(home: string): string[] {
  const dir = join(home, 'logs');
  if (!existsSync(dir)) return [];
  const problems: string[] = [];
  for (const f of readdirSync(dir)) {
    for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) {
      if (line.trim() === '') continue;
      const level = /"level":(\d+)/.exec(line)?.[1];
      if (level === undefined ? f.includes('error') : Number(level) >= 40) problems.push(line);
    }
  }
  return problems;
}

function fmt(x: number, digits: number): string {
  return Number.isFinite(x) ? x.toFixed(digits) : '–';
}

async function main(): Promise<void> {
  if (!existsSync(new URL('dist/main.js', ROOT))) {
    throw new Error('dist/main.js is missing: run npm run build first');
  }
  mkdirSync(RESULTS, { recursive: true });
  console.log(
    `body: ${source}, ${body.length.toLocaleString('en-US')} bytes; ${shapes.map((s) => `c${s.concurrency}×${s.requests}`).join(', ')}; ` +
      `${REPEATS} repeat(s) after a warm-up of ${WARMUP} requests${QUICK ? ' (BENCH_QUICK)' : ''}`,
  );

  const naiveCsv = join(tempDir('bench-naive-'), 'csv');
  tempDirs.push(dirname(naiveCsv));
  bodyFile = join(tempDir('bench-body-'), 'body.ndjson');
  tempDirs.push(dirname(bodyFile));
  writeFileSync(bodyFile, body);
  const service = await startService();
  servers.set('service', service);
  serviceCsvDir = service.cluster.csvDir;
  tempDirs.push(dirname(serviceCsvDir));
  // The same service with a datasets file: the default dataset is the four default fields typed
  // int, datetime, float, float, plus received_at (SPEC §8), under a header.
  const variant = async (name: Name, env: Record<string, string>): Promise<void> => {
    if (!NAMES.includes(name)) return;
    const s = await startService(env);
    servers.set(name, { ...s, name });
    tempDirs.push(dirname(s.cluster.csvDir));
  };
  const typedFile = join(tempDir('bench-typed-'), 'datasets.yaml');
  tempDirs.push(dirname(typedFile));
  writeFileSync(typedFile, TYPED_DATASETS);
  await variant('typed', { DATASETS_FILE: typedFile });
  await variant('fsync', { CSV_FSYNC: 'true' });
  await variant('no-metrics', { METRICS_ENABLED: 'false' });
  await variant('no-transform', { NODE_OPTIONS: NO_TRANSFORM_NODE_OPTIONS });
  servers.set('ceiling', await startNodeCluster('ceiling', 'ceiling-server.ts'));
  servers.set('naive', await startNodeCluster('naive', 'naive-server.ts', { CSV_DIR: naiveCsv }));
  for (const s of servers.values())
    console.log(`${s.name}: ${s.url}, workers ${s.workers.join(', ')}`);

  const measured: Measured[] = [];
  // The warm-up is interleaved too, in rounds with the order rotated: warmed one after another,
  // the servers warmed last measured 7–15 % less CPU per request in A/A runs of identical
  // clusters on this host, and the service would always have been warmed first.
  const warmups: Measured[] = [];
  const warmupRounds = QUICK ? 1 : 4;
  for (let w = 0; w < warmupRounds; w++) {
    const order = [...NAMES.slice(w % NAMES.length), ...NAMES.slice(0, w % NAMES.length)];
    for (const c of [1, Math.max(...concurrencies)]) {
      for (const name of order) {
        warmups.push(await measure(name, c, Math.ceil(WARMUP / warmupRounds), -1));
      }
    }
  }
  for (let r = 0; r < REPEATS; r++) {
    for (const [i, shape] of shapes.entries()) {
      // Rotate the order so that no server always runs first (or right after another).
      const k = (r + i) % NAMES.length;
      const order = [...NAMES.slice(k), ...NAMES.slice(0, k)];
      for (const client of CLIENTS) {
        for (const name of order) {
          measured.push(await measure(name, shape.concurrency, shape.requests, r, client));
        }
      }
    }
  }

  // Metrics on vs off, loaded at the same time: this VM's speed swings by up to 2x within minutes
  // (and by ±30 % between two adjacent runs), far more than the effect measured, so both
  // clusters take the same load side by side, under the same host conditions, and their server
  // CPU per request is compared (the service is CPU-bound, so CPU per request is throughput cost).
  const abPairs = !NAMES.includes('no-metrics') ? 0 : QUICK ? 2 : 10;
  const abRuns: Measured[] = [];
  const metricsCosts: number[] = [];
  for (let r = 0; r < abPairs; r++) {
    // Alternate which load starts first, so that neither cluster always gets the head start.
    const amount = QUICK ? 128 : 768;
    const [on, off] =
      r % 2 === 0
        ? await Promise.all([
            measure('service', 2, amount, 100 + r),
            measure('no-metrics', 2, amount, 100 + r),
          ])
        : await Promise.all([
            measure('no-metrics', 2, amount, 100 + r),
            measure('service', 2, amount, 100 + r),
          ]).then(([off2, on2]) => [on2, off2]);
    abRuns.push(on, off);
    metricsCosts.push(on.cpuPerRequest / off.cpuPerRequest - 1);
  }

  // Correctness of the service's output, before stopping it.
  const rowCheck = await countServiceRows();
  const workersNow = await service.cluster.workers();
  const restarts = workersNow.reduce((n, w) => n + w.restarts, 0);
  const logProblems = serviceLogProblems(service.cluster.home);
  await stopAll();
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });

  // Medians over the repeats, per server and concurrency; ratios paired within each repeat.
  const pick = (name: Name, c: number, client: Client = CLIENTS[0]) =>
    measured.filter((m) => m.server === name && m.concurrency === c && m.client === client);
  const ratio = (name: Name, other: Name, c: number, client: Client = CLIENTS[0]) =>
    median(
      pick(name, c, client).map((m) => {
        const o = pick(other, c, client).find((x) => x.repeat === m.repeat)!;
        return m.mbPerSec / o.mbPerSec;
      }),
    );
  interface Row {
    name: Name;
    client: Client;
    c: number;
    reqPerSec: number;
    mbPerSec: number;
    p50: number;
    p99: number;
    cpu: number;
    xCeiling: number;
    xNaive: number;
  }
  const rows: Row[] = [];
  for (const client of CLIENTS) {
    for (const name of NAMES) {
      for (const c of concurrencies) {
        const ms = pick(name, c, client);
        rows.push({
          name,
          client,
          c,
          reqPerSec: median(ms.map((m) => m.reqPerSec)),
          mbPerSec: median(ms.map((m) => m.mbPerSec)),
          p50: median(ms.map((m) => m.p50)),
          p99: median(ms.map((m) => m.p99)),
          cpu: median(ms.map((m) => m.cpuPerRequest)),
          xCeiling: ratio(name, 'ceiling', c, client),
          xNaive: ratio(name, 'naive', c, client),
        });
      }
    }
  }
  const row = (name: Name, c: number, client: Client = CLIENTS[0]) =>
    rows.find((x) => x.name === name && x.c === c && x.client === client)!;

  // Checks: every service answer a 2xx that reports 1,600 valid records, 1,600 rows per 2xx.
  const all = [...warmups, ...measured, ...abRuns];
  const sum = (name: Name, f: (r: LoadRun) => number) =>
    all.filter((m) => m.server === name).reduce((n, m) => n + f(m.run), 0);
  const problems: string[] = [];
  for (const name of NAMES) {
    const non2xx = sum(name, (r) => r.non2xx);
    const errors = sum(name, (r) => r.errors);
    const bad = sum(name, (r) => r.mismatches);
    if (non2xx + errors + bad > 0) {
      problems.push(`${name}: ${non2xx} non-2xx, ${errors} connection errors, ${bad} bad bodies`);
    }
  }
  // wrk abandons the requests in flight when a run ends; the service may have committed them.
  const expectedRows = serviceAcknowledged * expected.valid;
  const extraRows = rowCheck.rows - expectedRows;
  const rowsAgree =
    extraRows >= 0 &&
    extraRows % expected.valid === 0 &&
    extraRows <= serviceAbandonedAtMost * expected.valid;
  const expectedText =
    serviceAbandonedAtMost === 0
      ? expectedRows.toLocaleString('en-US')
      : `${expectedRows.toLocaleString('en-US')} + a multiple of ${expected.valid.toLocaleString('en-US')} up to ${(serviceAbandonedAtMost * expected.valid).toLocaleString('en-US')} for requests wrk abandoned in flight`;
  if (!rowsAgree) {
    problems.push(
      `service: ${rowCheck.rows.toLocaleString('en-US')} CSV rows for ${serviceAcknowledged} 2xx answers (expected ${expectedText})`,
    );
  }
  if (rowCheck.quarantined > 0) problems.push(`service: ${rowCheck.quarantined} quarantined lines`);
  if (restarts > 0) problems.push(`service: ${restarts} pm2 restart(s)`);
  if (logProblems.length > 0) {
    problems.push(`service: ${logProblems.length} warning/error log line(s)`);
  }
  const serviceAnswers = sum('service', (r) => r.requests);
  const checks = [
    `${serviceAnswers.toLocaleString('en-US')} service answers, ${serviceAcknowledged.toLocaleString('en-US')} 2xx, each reporting ${expected.valid.toLocaleString('en-US')} valid records for ${body.length.toLocaleString('en-US')} bytes`,
    `${rowCheck.rows.toLocaleString('en-US')} rows in the day file(s) (${rowCheck.files.join(', ') || 'none'}) = ${expected.valid.toLocaleString('en-US')} × ${serviceAcknowledged.toLocaleString('en-US')} 2xx${serviceAbandonedAtMost === 0 ? '' : ` + ${(extraRows / expected.valid).toLocaleString('en-US')} request(s) wrk abandoned in flight (at most ${serviceAbandonedAtMost})`}: ${rowsAgree ? 'yes' : 'NO'}`,
    `pm2 restarts ${restarts}; warning/error log lines ${logProblems.length}`,
  ];

  const [cMin] = concurrencies;
  const cMax = Math.max(...concurrencies);
  const high = concurrencies.filter((c) => c >= 4);
  const verdict = (ok: boolean) => (ok ? 'PASS' : 'MISS');
  const targets = [
    ...CLIENTS.map((client) => {
      const xs = high.map((c) => row('service', c, client).xCeiling);
      return `${verdict(xs.every((x) => x >= 0.5))}  service MB/s ≥ 0.50 × ceiling at ${high.map((c) => `c${c}`).join(', ')}, ${client}: ${xs.map((x, i) => `c${high[i]} ${fmt(x, 2)}×`).join(', ')}`;
    }),
    ...CLIENTS.map((client) => {
      const xs = concurrencies.map((c) => row('service', c, client).xNaive);
      return `${verdict(xs.every((x) => x >= 4))}  service MB/s ≥ 4 × naive at every concurrency, ${client}: ${xs.map((x, i) => `c${concurrencies[i]} ${fmt(x, 2)}×`).join(', ')}`;
    }),
    ...CLIENTS.map((client) => {
      const p99s = pick('service', cMax, client).map((m) => m.p99);
      const p99 = median(p99s);
      return `${verdict(p99 <= 10)}  service p99 at c${cMax} ≤ 10 ms, ${client}: median ${fmt(p99, 2)} ms (repeats: ${p99s.map((x) => fmt(x, 1)).join(', ')} ms)`;
    }),
    (() => {
      if (!NAMES.includes('no-metrics')) return 'INFO  no-metrics: not run (BENCH_SERVERS)';
      // Throughput cost of metrics: 1 − service / no-metrics over adjacent pairs at c4.
      const cost = median(metricsCosts);
      const spread = `pairs from ${fmt(100 * Math.min(...metricsCosts), 1)}% to ${fmt(100 * Math.max(...metricsCosts), 1)}%`;
      // Not judged: on this kind of host the pairs spread by ±15–25 %, far more than the cost
      // (57 ns per request, measured directly by `npm run bench:metrics`).
      return `INFO  metrics, side by side: median ${fmt(100 * cost, 1)}% more server CPU per request with metrics, over ${metricsCosts.length} runs (c2 each; ${spread}); the direct cost is in the metrics section`;
    })(),
    (() => {
      // Node's cluster primary (pm2's, here) hands each new connection to whichever worker
      // acknowledged its last one first, so a burst of keep-alive connections can fall unevenly,
      // and stays so for the run: the worker with more connections sets the tail.
      const runs = pick('service', cMax);
      const even = `${cMax / 2}/${cMax / 2}`;
      const part = (xs: Measured[]) =>
        xs.length === 0
          ? 'none'
          : `${xs.length} (p99 median ${fmt(median(xs.map((m) => m.p99)), 2)} ms)`;
      return (
        `INFO  service at c${cMax}, connections per worker (estimated from each worker's share of the requests, so a slower worker can read as holding fewer): even (${even}) in ` +
        `${part(runs.filter((m) => m.split === even))}, uneven in ` +
        `${part(runs.filter((m) => m.split !== even))}; by repeat: ` +
        runs.map((m) => `${m.split} ${fmt(m.p99, 1)} ms`).join(', ')
      );
    })(),
    (() => {
      // glibc's page-fault state (docs/performance-notes.md, "A second per-worker state"): ~2–6 minor faults
      // per request when a worker keeps its malloc'd pages, 50–130 when it does not.
      const per = concurrencies.map((c) =>
        median(pick('service', c).map((m) => m.faultsPerRequest)),
      );
      const sys = concurrencies.map((c) => median(pick('service', c).map((m) => m.sysPerRequest)));
      return `INFO  service workers' minor page faults per request: ${per.map((x, i) => `c${concurrencies[i]} ${fmt(x, 1)}`).join(', ')}; system CPU ms per request: ${sys.map((x, i) => `c${concurrencies[i]} ${fmt(x, 2)}`).join(', ')}`;
    })(),
    (() => {
      if (!NAMES.includes('typed')) return 'INFO  typed: not run (BENCH_SERVERS)';
      // A typed dataset against the default columns, paired within each repeat.
      const xs = concurrencies.map((c) =>
        median(
          pick('typed', c).map((m) => {
            const o = pick('service', c).find((x) => x.repeat === m.repeat)!;
            return m.mbPerSec / o.mbPerSec;
          }),
        ),
      );
      return `INFO  typed dataset MB/s × service (default columns): ${xs.map((x, i) => `c${concurrencies[i]} ${fmt(x, 2)}×`).join(', ')}`;
    })(),
    (() => {
      if (!NAMES.includes('fsync')) return 'INFO  fsync: not run (BENCH_SERVERS)';
      // The durability cost: CSV_FSYNC=true against false, paired within each repeat.
      const at = (c: number) =>
        median(
          pick('fsync', c).map((m) => {
            const o = pick('service', c).find((x) => x.repeat === m.repeat)!;
            return m.mbPerSec / o.mbPerSec;
          }),
        );
      const x = at(cMax);
      return `${x >= 0.7 ? 'PASS' : 'MISS'}  CSV_FSYNC=true MB/s ≥ 0.70 × CSV_FSYNC=false at c${cMax}: ${fmt(x, 2)}× (${concurrencies.map((c) => `c${c} ${fmt(at(c), 2)}×`).join(', ')}); p99 at c${cMax}: ${fmt(row('fsync', cMax).p99, 2)} ms`;
    })(),
    (() => {
      if (!NAMES.includes('no-transform')) return 'INFO  no-transform: not run (BENCH_SERVERS)';
      // What the shape costs without any parsing: the bound on the service's ratio to the ceiling.
      return CLIENTS.map((client) => {
        const xs = high.map((c) => row('no-transform', c, client).xCeiling);
        return `INFO  no-transform (the service without its transform) MB/s × ceiling, ${client}: ${xs.map((x, i) => `c${high[i]} ${fmt(x, 2)}×`).join(', ')}; p99 at c${cMax}: ${fmt(row('no-transform', cMax, client).p99, 2)} ms`;
      }).join('\n');
    })(),
  ];

  const date = new Date().toISOString().slice(0, 10);
  const command = QUICK ? 'BENCH_QUICK=1 npm run bench' : 'npm run bench';
  const table = [
    '| client | server | concurrency | req/s | MB/s | p50 ms | p99 ms | CPU ms/req | × ceiling | × naive |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (x) =>
        `| ${x.client} | ${x.name} | ${x.c} | ${fmt(x.reqPerSec, 0)} | ${fmt(x.mbPerSec, 1)} | ${fmt(x.p50, 2)} | ${fmt(x.p99, 2)} | ${fmt(x.cpu, 2)} | ${fmt(x.xCeiling, 2)} | ${fmt(x.xNaive, 2)} |`,
    ),
  ];
  const section = [
    `Body: ${source}, ${body.length.toLocaleString('en-US')} bytes, \`POST ${scenarios.path}\`; keep-alive, ` +
      `pipelining 1, the load generator on the same machine: ` +
      CLIENTS.map((client) =>
        client === 'wrk'
          ? `wrk (C, one thread; ${WRK_SECONDS} s per run, as wrk counts time, not requests)`
          : `autocannon (Node.js, one process; ${shapes[0].requests.toLocaleString('en-US')} requests per run)`,
      ).join(' and ') +
      `, at concurrency ${concurrencies.join(', ')}; the ${NAMES.length} servers interleaved ` +
      `(order rotated), ${REPEATS} repeat(s) after a warm-up of ${WARMUP} requests per server at ` +
      `c${cMin} and c${cMax}, itself interleaved in ${warmupRounds} rotated rounds; medians over the repeats.${QUICK ? ' **Smoke run (BENCH_QUICK=1), not a measurement.**' : ''}`,
    '',
    '- **service**: `pm2 start ecosystem.config.js`, cluster mode, `INSTANCES=max`, metrics on, default log level (one line per request)',
    '- **fsync**: the same with `CSV_FSYNC=true`: a 200 only after an fdatasync of the rows (group commit), on the ext4 disk the CSV folder is on',
    '- **typed**: the same with a datasets file (SPEC §8): the default dataset is the four default fields typed int, datetime, float, float, plus `received_at`, with a header row',
    '- **no-metrics**: the same with `METRICS_ENABLED=false`; besides the table, ' +
      `${QUICK ? 2 : 10} runs loading service and no-metrics at the same time (c2 each) give the metrics' cost in server CPU per request`,
    '- **no-transform**: the service as above with its transform replaced by a stub that drops every chunk (`bench/no-transform/`, a module-resolution hook given in `NODE_OPTIONS`): Nest, Fastify, pm2, limits, logging, metrics and the answer, no parsing and no rows',
    '- **ceiling**: `bench/ceiling-server.ts`, node:http cluster, one worker per core, drains the body and answers a small JSON',
    '- **naive**: `bench/naive-server.ts`, Nest + Fastify cluster, one worker per core: body buffered, `JSON.parse` per line, `fs.appendFile`',
    '',
    ...table,
    '',
    'client: the load generator. autocannon spends about as much CPU per request as the ceiling server ' +
      'on these shared 2 cores; wrk a fraction of it, so its ratios are nearer what a user with a ' +
      'separate client machine sees. ' +
      'MB/s: 10⁶ body bytes acknowledged (2xx) per second of wall time, first request to last answer. ' +
      'Latency: per request, from writing it to reading the whole answer. CPU: user + system time of ' +
      'the worker processes (`/proc/<pid>/stat`) during the run, per request (the pm2 daemon and ' +
      'the cluster primaries, which only hand out connections, are not counted). × ceiling, × naive: ' +
      'MB/s ratio to that server in the same repeat and concurrency, median over the repeats.',
    '',
    'Checks:',
    '',
    ...checks.map((c) => `- ${c}`),
    ...(problems.length > 0 ? problems.map((p) => `- **FAIL** ${p}`) : ['- all passed']),
    '',
    'Targets:',
    '',
    '```',
    ...targets,
    '```',
    '',
    `Charts: \`${REPORT_HTML}\` (generated, not committed).`,
    '',
    ...provenance(command, date),
  ].join('\n');

  console.log(`\n${section}`);
  for (const p of logProblems.slice(0, 5)) console.log(`  log: ${p.slice(0, 300)}`);

  const target = QUICK ? new URL('BENCHMARKS-quick.md', RESULTS) : new URL('BENCHMARKS.md', ROOT);
  await writeSection(target, 'http', section);

  // Charts: per-request response time (last repeat) and throughput per concurrency.
  const lastRepeat = REPEATS - 1;
  // Per-request latencies: autocannon records each one (wrk only its percentiles).
  const perRequest = (c: number, sorted: boolean): Series[] =>
    NAMES.map((name) => {
      const m = measured.find(
        (x) =>
          x.server === name &&
          x.concurrency === c &&
          x.repeat === lastRepeat &&
          x.client === 'autocannon',
      );
      if (m === undefined) return { name, color: COLORS[name], points: [] };
      const ys = Array.from(m.run.latencies);
      if (sorted) ys.sort((a, b) => a - b);
      return { name, color: COLORS[name], points: ys.map((y, i) => [i + 1, y] as const) };
    });
  // One series per server and client (wrk's dashed) of a median per concurrency.
  const perConcurrency = (value: (r: Row) => number): Series[] =>
    CLIENTS.flatMap((client) =>
      NAMES.map((name) => ({
        name: `${name}, ${client}`,
        color: COLORS[name],
        dashed: client === 'wrk',
        markers: true,
        points: concurrencies.map((c) => [c, value(row(name, c, client))] as const),
      })),
    );
  const charts = [
    lineChart({
      title: `Response time per request, concurrency ${cMax} (repeat ${lastRepeat + 1})`,
      xLabel: 'request (in order of answer)',
      yLabel: 'response time, ms (log)',
      series: perRequest(cMax, false),
      logY: true,
    }),
    lineChart({
      title: `Response time per request, sorted, concurrency ${cMax} (as ab -g + gnuplot)`,
      xLabel: 'request (sorted by response time)',
      yLabel: 'response time, ms (log)',
      series: perRequest(cMax, true),
      logY: true,
    }),
    lineChart({
      title: `Response time per request, concurrency ${cMin} (repeat ${lastRepeat + 1})`,
      xLabel: 'request (in order of answer)',
      yLabel: 'response time, ms (log)',
      series: perRequest(cMin, false),
      logY: true,
    }),
    lineChart({
      title: 'Throughput per concurrency (median over repeats)',
      xLabel: 'concurrency (keep-alive connections)',
      yLabel: 'MB/s of request body',
      series: perConcurrency((r) => r.mbPerSec),
      xTicks: concurrencies,
    }),
    lineChart({
      title: 'p99 response time per concurrency (median over repeats)',
      xLabel: 'concurrency (keep-alive connections)',
      yLabel: 'p99, ms (log)',
      series: [
        ...perConcurrency((r) => r.p99),
        {
          name: 'p99 target, 10 ms',
          color: '#b3261e',
          dashed: true,
          points: [[cMin, 10] as const, [cMax, 10] as const],
        },
      ],
      xTicks: concurrencies,
      logY: true,
    }),
  ];
  const htmlTable = [
    '<table><tr>',
    ...[
      'client',
      'server',
      'concurrency',
      'req/s',
      'MB/s',
      'p50 ms',
      'p99 ms',
      'CPU ms/req',
      '× ceiling',
      '× naive',
    ].map((h) => `<th>${escapeHtml(h)}</th>`),
    '</tr>',
    ...rows.map(
      (x) =>
        `<tr><td>${x.client}</td><td>${x.name}</td>${[x.c, fmt(x.reqPerSec, 0), fmt(x.mbPerSec, 1), fmt(x.p50, 2), fmt(x.p99, 2), fmt(x.cpu, 2), fmt(x.xCeiling, 2), fmt(x.xNaive, 2)].map((v) => `<td class="n">${v}</td>`).join('')}</tr>`,
    ),
    '</table>',
  ].join('\n');
  const html = htmlPage('ndjson-ingest: HTTP benchmark', [
    `<p>${escapeHtml(`Body: ${source}, ${body.length.toLocaleString('en-US')} bytes; ${REPEATS} repeat(s); ${machine()}; ${date}; command: ${command}`)}</p>`,
    htmlTable,
    `<pre>${targets.map((t) => `<span class="${t.startsWith('PASS') ? 'pass' : 'miss'}">${escapeHtml(t)}</span>`).join('\n')}</pre>`,
    `<p>${escapeHtml(problems.length > 0 ? `FAILED checks: ${problems.join('; ')}` : `Checks passed: ${checks.join('; ')}`)}</p>`,
    ...charts,
  ]);
  writeFileSync(new URL(`report${SUFFIX}.html`, RESULTS), html);
  writeFileSync(
    new URL(`http${SUFFIX}.json`, RESULTS),
    JSON.stringify(
      {
        date,
        machine: machine(),
        command,
        rows,
        runs: all.map(({ run, ...m }) => ({ ...m, ...run, latencies: undefined })),
        checks,
        problems,
        targets,
      },
      null,
      1,
    ),
  );
  console.log(
    `\nwrote the http section of ${QUICK ? 'bench/results/BENCHMARKS-quick.md' : 'BENCHMARKS.md'}, ${REPORT_HTML}, bench/results/http${SUFFIX}.json`,
  );
  if (problems.length > 0) process.exitCode = 1;
}

try {
  await main();
} catch (err) {
  process.exitCode = 1;
  console.error(err);
  const service = servers.get('service') as Awaited<ReturnType<typeof startService>> | undefined;
  if (service !== undefined) console.error(`the service's pm2 logs: ${service.cluster.home}/logs`);
} finally {
  await stopAll();
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
}
