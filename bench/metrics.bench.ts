/**
 * npm run bench:metrics [-- --write]
 *
 * What the metrics cost one ingest request: exactly the recording the service does per request
 * (byte and record tallies, the status tally, three histograms), timed
 * over many iterations against the same loop with metrics disabled, interleaved. The HTTP
 * benchmark compares the service with METRICS_ENABLED=false too, but at ~2 ms per request its
 * run-to-run noise (±10 %) hides a cost this small; this measures it directly.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { IngestMetrics } from '../src/metrics/ingest-metrics.js';
import { machine, median, replaceSection } from './report.js';

const ITERATIONS = 200_000;
const REPEATS = 7;

function record(m: IngestMetrics, i: number): void {
  // The same calls the service makes per request (IngestService, then IngestController).
  m.recordIngest(
    {
      receivedBytes: 584480,
      decodedBytes: 584480,
      writtenBytes: 51648,
      valid: 1600,
      invalid: 0,
      parseSeconds: 0.0004 + (i % 7) * 1e-5,
      writeSeconds: 0.00008 + (i % 5) * 1e-6,
    },
    'nyc_taxi',
  );
  m.recordAnswer(200, 0.0015 + (i % 11) * 1e-5, 'nyc_taxi');
}

function nsPerRequest(m: IngestMetrics): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < ITERATIONS; i++) record(m, i);
  return Number(process.hrtime.bigint() - t0) / ITERATIONS;
}

const on = new IngestMetrics(tmpdir(), true);
const off = new IngestMetrics(tmpdir(), false);
nsPerRequest(on);
nsPerRequest(off);
const onNs: number[] = [];
const offNs: number[] = [];
for (let r = 0; r < REPEATS; r++) {
  onNs.push(nsPerRequest(on));
  offNs.push(nsPerRequest(off));
}
const cost = median(onNs) - median(offNs);
// Server CPU per request of the service in the HTTP benchmark (BENCHMARKS.md): ~2-3 ms here.
const perRequestMs = Number(process.env.REQUEST_CPU_MS ?? 2);
const text = [
  `Per-request metric recording (byte and record tallies, status tally, 3 histograms), ${ITERATIONS.toLocaleString('en-US')} iterations × ${REPEATS} interleaved repeats:`,
  '',
  '| variant | median ns per request |',
  '|---|---:|',
  `| metrics on | ${median(onNs).toFixed(0)} |`,
  `| metrics off | ${median(offNs).toFixed(0)} |`,
  '',
  `Cost: **${(cost / 1000).toFixed(2)} µs per request = ${((100 * cost) / (perRequestMs * 1e6)).toFixed(3)} %** of the ~${perRequestMs} ms of server CPU a request takes (HTTP table above). ` +
    'A scrape costs the scraping worker one registry serialisation per worker, off the ingest path.',
  '',
  `Machine: ${machine()}; ${new Date().toISOString().slice(0, 10)}; command: \`npm run bench:metrics\`.`,
].join('\n');
console.log(text);
if (process.argv.includes('--write')) {
  const path = new URL('../BENCHMARKS.md', import.meta.url);
  writeFileSync(path, replaceSection(readFileSync(path, 'utf8'), 'metrics', text));
}
