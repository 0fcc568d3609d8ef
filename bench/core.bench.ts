/**
 * npm run bench:core [-- --write]
 *
 * MB/s per core of the NDJSON → CSV transform on the reference body (16 × the sample, 584,480
 * bytes, or 1,600 generated records without ../shared) fed in 64 KiB chunks, against the
 * JSON.parse-per-line baseline, interleaved in one run. With --write, the table replaces the
 * core section of BENCHMARKS.md.
 */
import { cpus } from 'node:os';
import { readFileSync, writeFileSync } from 'node:fs';
import { NdjsonCsvTransform } from '../src/ingest/core/ndjson-csv.js';
import { DEFAULT_COLUMNS, referenceBody } from '../test/support/taxi.js';
import { JsonParseBaseline } from './baseline.js';
import { median, machine, replaceSection } from './report.js';

const CHUNK = 64 * 1024;
const REPEATS = Number(process.env.REPEATS ?? 7);
const ROUND_MS = Number(process.env.ROUND_MS ?? 400);

const { body, source } = referenceBody();
const chunks: Buffer[] = [];
for (let i = 0; i < body.length; i += CHUNK) chunks.push(body.subarray(i, i + CHUNK));

let sinkBytes = 0;

function runTransform(): void {
  const t = new NdjsonCsvTransform({
    columns: DEFAULT_COLUMNS,
    eol: 'crlf',
    maxLineBytes: 1 << 20,
  });
  for (const c of chunks) sinkBytes += t.push(c).length;
  sinkBytes += t.end().length;
  if (t.valid !== 1600) throw new Error(`transform: ${t.valid} valid records`);
}

function runBaseline(): void {
  const t = new JsonParseBaseline(DEFAULT_COLUMNS);
  for (const c of chunks) sinkBytes += t.push(c).length;
  sinkBytes += t.end().length;
  if (t.valid !== 1600) throw new Error(`baseline: ${t.valid} valid records`);
}

/** Runs `fn` over the body for ROUND_MS and returns MB/s (10^6 bytes per second). */
function round(fn: () => void): number {
  const start = process.hrtime.bigint();
  let n = 0;
  let elapsed: number;
  do {
    fn();
    n++;
    elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  } while (elapsed * 1000 < ROUND_MS);
  return (n * body.length) / elapsed / 1e6;
}

const variants: [string, () => void][] = [
  ['byte scanner (NdjsonCsvTransform)', runTransform],
  ['JSON.parse per line + CSV (baseline)', runBaseline],
];

// Warm-up: let both reach their optimised code before measuring.
for (const [, fn] of variants) round(fn);

const results = new Map<string, number[]>(variants.map(([name]) => [name, []]));
for (let r = 0; r < REPEATS; r++) {
  // Interleave, alternating the order so neither always runs first.
  const order = r % 2 === 0 ? variants : [...variants].reverse();
  for (const [name, fn] of order) results.get(name)!.push(round(fn));
}

const scanner = median(results.get(variants[0][0])!);
const baseline = median(results.get(variants[1][0])!);
const lines = [
  `Body: ${source}, ${body.length.toLocaleString('en-US')} bytes, fed in 64 KiB chunks; ` +
    `${REPEATS} interleaved rounds of ${ROUND_MS} ms each after a warm-up, one core.`,
  '',
  '| variant | median MB/s | min | max |',
  '|---|---:|---:|---:|',
  ...variants.map(([name]) => {
    const xs = results.get(name)!;
    return `| ${name} | ${median(xs).toFixed(0)} | ${Math.min(...xs).toFixed(0)} | ${Math.max(...xs).toFixed(0)} |`;
  }),
  '',
  `Ratio scanner / baseline (medians): **${(scanner / baseline).toFixed(2)}×**`,
  '',
  `Machine: ${machine()}; ${new Date().toISOString().slice(0, 10)}; command: \`npm run bench:core\`.`,
];
const table = lines.join('\n');
console.log(table);
if (sinkBytes === 0) throw new Error('no output');
if (process.argv.includes('--write')) {
  const path = new URL('../BENCHMARKS.md', import.meta.url);
  writeFileSync(path, replaceSection(readFileSync(path, 'utf8'), 'core', table));
  console.log(`\nwrote the core section of BENCHMARKS.md (${cpus().length} cores here)`);
}
