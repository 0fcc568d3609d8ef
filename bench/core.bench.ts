/**
 * npm run bench:core [-- --write] [-- --before GIT_REV]
 *
 * MB/s per core of the NDJSON → CSV transform on the reference body (16 × the sample, 584,480
 * bytes, or 1,600 generated records without ../shared) fed in 64 KiB chunks, against the
 * JSON.parse-per-line baseline, interleaved in one run. Also a typed dataset (SPEC §8: the four
 * default fields typed int, datetime, float, float, plus received_at) on the same body, and the
 * same typed columns by `$.trip.…` paths on the records wrapped one level deeper.
 * `--before REV` adds the transform as it was at a git revision (its src/ingest/core, taken with
 * `git show`), so a change to the kernel is measured A/B in the same run.
 * With --write, the table replaces the core section of BENCHMARKS.md.
 */
import { execFileSync } from 'node:child_process';
import { cpus } from 'node:os';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NdjsonCsvTransform } from '../src/ingest/core/ndjson-csv.js';
import type { ColumnSpec } from '../src/ingest/core/schema.js';
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

/** The records wrapped one level deeper: `{"trip":<record>}`. */
const nestedBody = Buffer.from(
  body
    .toString('utf8')
    .split('\n')
    .map((l) => (l.trim() === '' ? l : `{"trip":${l.replace(/\r$/, '')}}`))
    .join('\n'),
);
const nestedChunks: Buffer[] = [];
for (let i = 0; i < nestedBody.length; i += CHUNK) {
  nestedChunks.push(nestedBody.subarray(i, i + CHUNK));
}

const typed = (root: string): ColumnSpec[] => [
  { name: 'vendorid', path: `${root}.vendorid`, type: 'int' },
  { name: 'tpep_pickup_datetime', path: `${root}.tpep_pickup_datetime`, type: 'datetime' },
  { name: 'trip_distance', path: `${root}.trip_distance`, type: 'float' },
  { name: 'total_amount', path: `${root}.total_amount`, type: 'float' },
  { name: 'received_at', meta: 'received_at' },
];
const TYPED = typed('$');
const NESTED = typed('$.trip');

function runDataset(columns: ColumnSpec[], input: Buffer[]): void {
  const t = new NdjsonCsvTransform({
    columns,
    eol: 'crlf',
    maxLineBytes: 1 << 20,
    meta: { requestId: 'bench', receivedAt: new Date(), node: 'bench' },
  });
  for (const c of input) sinkBytes += t.push(c).length;
  sinkBytes += t.end().length;
  if (t.valid !== 1600)
    throw new Error(`typed transform: ${t.valid} valid records, ${t.invalid} invalid`);
}

/** The transform at a git revision, for an A/B of a kernel change in one run. */
async function transformAt(rev: string): Promise<typeof NdjsonCsvTransform> {
  const dir = mkdtempSync(join(new URL('.', import.meta.url).pathname, '.before-'));
  const files = execFileSync('git', ['ls-tree', '--name-only', `${rev}:src/ingest/core`], {
    encoding: 'utf8',
  })
    .split('\n')
    .filter((f) => f.endsWith('.ts'));
  for (const f of files) {
    writeFileSync(join(dir, f), execFileSync('git', ['show', `${rev}:src/ingest/core/${f}`]));
  }
  const module = (await import(join(dir, 'ndjson-csv.ts'))) as {
    NdjsonCsvTransform: typeof NdjsonCsvTransform;
  };
  rmSync(dir, { recursive: true, force: true }); // loaded: the copies are no longer needed
  return module.NdjsonCsvTransform;
}

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

/** Runs `fn` over its body for ROUND_MS and returns MB/s (10^6 bytes per second). */
function round(fn: () => void, bytes = body.length): number {
  const start = process.hrtime.bigint();
  let n = 0;
  let elapsed: number;
  do {
    fn();
    n++;
    elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  } while (elapsed * 1000 < ROUND_MS);
  return (n * bytes) / elapsed / 1e6;
}

const variants: [string, () => void][] = [
  ['byte scanner (NdjsonCsvTransform)', runTransform],
  ['JSON.parse per line + CSV (baseline)', runBaseline],
  ['typed dataset: int, datetime, float, float + received_at', () => runDataset(TYPED, chunks)],
  ['typed dataset, nested: the same by $.trip.… paths', () => runDataset(NESTED, nestedChunks)],
];
const beforeAt = process.argv.indexOf('--before');
const beforeRev = beforeAt > 0 ? process.argv[beforeAt + 1] : undefined;
if (beforeRev !== undefined) {
  const Before = await transformAt(beforeRev);
  variants.push([
    `byte scanner at ${beforeRev} (before)`,
    () => {
      const t = new Before({ columns: DEFAULT_COLUMNS, eol: 'crlf', maxLineBytes: 1 << 20 });
      for (const c of chunks) sinkBytes += t.push(c).length;
      sinkBytes += t.end().length;
      if (t.valid !== 1600) throw new Error(`before: ${t.valid} valid records`);
    },
  ]);
}
/** Bytes each variant reads per run (the nested body is longer). */
const inputBytes = (name: string): number =>
  name.includes('nested') ? nestedBody.length : body.length;

// Warm-up: let both reach their optimised code before measuring.
for (const [, fn] of variants) round(fn);

const results = new Map<string, number[]>(variants.map(([name]) => [name, []]));
for (let r = 0; r < REPEATS; r++) {
  // Interleave, alternating the order so neither always runs first.
  const order = r % 2 === 0 ? variants : [...variants].reverse();
  for (const [name, fn] of order) results.get(name)!.push(round(fn, inputBytes(name)));
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
  `Typed dataset / default columns: **${(median(results.get(variants[2][0])!) / scanner).toFixed(2)}×**; ` +
    `nested typed / default: **${(median(results.get(variants[3][0])!) / scanner).toFixed(2)}×** ` +
    `(MB/s of each body; the nested body is ${nestedBody.length.toLocaleString('en-US')} bytes)`,
  ...(beforeRev === undefined
    ? []
    : [
        `Default columns now / at ${beforeRev}: **${(scanner / median(results.get(variants[4][0])!)).toFixed(3)}×**`,
      ]),
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
