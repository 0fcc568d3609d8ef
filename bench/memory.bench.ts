/**
 * npm run bench:memory  (BENCH_QUICK=1 for a smoke run: a 64 MiB gzip body, 8 concurrent bodies,
 * 16 concurrent bodies of ~1 MB lines then 50 ordinary requests)
 *
 * Peak RSS of one worker (`node dist/main.js`, a fresh process per case) while it ingests (all
 * cases, or those named in MEMORY_CASES=gzip,concurrent,huge,huge-unbounded,long)
 * - one gzip body that decodes to ≥ 1 GiB of taxi-like NDJSON, compressed on the fly into a
 *   chunked request (MAX_DECODED_BYTES raised to 2 GiB for it, MAX_BODY_BYTES to 1 GiB);
 * - 32 concurrent 10 MiB bodies (all on this one worker: under pm2 they would be spread);
 * - 32 concurrent bodies of one 8,000,000-byte line with MAX_LINE_BYTES at 8 MiB, as the service
 *   runs (LONG_LINE_MEMORY_BYTES, 32 MiB: four such lines read at once) and with that bound off
 *   (every line read at once): a comparison of the two, not held to the target;
 * - 64 concurrent bodies of 4 lines of 1,000,000 bytes each (taxi-like records with one long
 *   string field, under MAX_LINE_BYTES), then 200 ordinary requests one at a time (1,600 records
 *   each, the reference size). This one also reports VmRSS before the load and VmRSS 2 s after
 *   the ordinary requests: memory the worker kept from the burst (WebAssembly memories of kernel
 *   instances never shrink, so pooling grown ones would pin it for good, issue 13 item 8).
 * The peak is the kernel's high-water mark, VmHWM in /proc/<pid>/status, read after the load;
 * VmRSS is also sampled every 50 ms during it. Every answer must be a 200 counting every record,
 * and the day file must hold one row per record. Target: ≤ 200 MiB per worker, for the peak and
 * for the RSS after the ordinary requests (above it is a failure). Writes the memory section of
 * BENCHMARKS.md (quick runs: bench/results/BENCHMARKS-quick.md).
 */
import { createReadStream, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { dirname, join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { createGzip } from 'node:zlib';
import { loadConfig } from '../src/config/config.js';
import { send, startServer, tempDir, type RunningServer } from '../test/support/server.js';
import { prng, taxiBody, taxiLine } from '../test/support/taxi.js';
import { memoryOf } from './load.js';
import { SAME_MALLOC } from './servers.js';
import { provenance } from './report.js';
import { writeSection } from './write-section.js';

const QUICK = process.env.BENCH_QUICK === '1';
const MiB = 2 ** 20;
const GiB = 2 ** 30;
const DECODED_BYTES = QUICK ? 64 * MiB : GiB;
const CONCURRENT = QUICK ? 8 : 32;
const BODY_BYTES = 10 * MiB;
const TARGET = 200 * MiB;
const LONG_CONCURRENT = QUICK ? 16 : 64;
const LONG_LINES = 4;
const LONG_LINE_BYTES = 1_000_000;
const ORDINARY = QUICK ? 50 : 200;
const ORDINARY_RECORDS = 1600;
const SETTLE_MS = 2000;
const RESULTS = new URL('results/', import.meta.url);

interface CaseResult {
  name: string;
  body: string;
  seconds: number;
  idlePeak: number;
  peak: number;
  sampledMax: number;
  /** VmRSS before the load and after it has settled (the burst-then-ordinary case only). */
  rssBefore?: number;
  rssAfter?: number;
  problems: string[];
  /** false: shown for comparison, not held to the target (its problems are reported, not failed). */
  judged?: boolean;
  /** false: its answers and rows are checked, its peak is shown but not held to the target. */
  peakJudged?: boolean;
}

function mib(bytes: number): string {
  return (bytes / MiB).toFixed(1);
}

/** Samples VmRSS until stopped; returns the largest value seen. */
function sampleRss(pid: number): () => number {
  let max = 0;
  const timer = setInterval(() => {
    try {
      max = Math.max(max, memoryOf(pid).rss);
    } catch {
      // the process is gone; the answer will say why
    }
  }, 50);
  return () => {
    clearInterval(timer);
    return max;
  };
}

async function countRows(csvDir: string): Promise<number> {
  let n = 0;
  if (!existsSync(csvDir)) return 0;
  for (const f of readdirSync(csvDir).filter((x) => /^nyc_taxi-\d{4}-\d{2}-\d{2}\.csv$/.test(x))) {
    for await (const chunk of createReadStream(join(csvDir, f)) as AsyncIterable<Buffer>) {
      for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) n++;
    }
  }
  return n;
}

interface Answer {
  status: number;
  json: { result?: { status?: string; stats?: { records?: { valid: number; invalid: number } } } };
  text: string;
}

function checkAnswer(a: Answer, records: number, problems: string[], what: string): void {
  const r = a.json?.result?.stats?.records;
  if (a.status !== 200 || r?.valid !== records || r.invalid !== 0) {
    problems.push(`${what}: ${a.status} ${a.text.slice(0, 300)}`);
  }
}

/**
 * `n` requests of `body` at once, each on its own connection; every answer must be a 200 counting
 * `records` valid records (problems named `what` 1…n). Returns the seconds until the last answer.
 */
async function sendAtOnce(
  server: RunningServer,
  n: number,
  body: Buffer,
  records: number,
  problems: string[],
  what: string,
): Promise<number> {
  const start = performance.now();
  const answers = await Promise.all(
    Array.from({ length: n }, () =>
      send(`${server.url}/ingest`, body, { headers: { 'content-type': 'application/x-ndjson' } }),
    ),
  );
  answers.forEach((a, i) => checkAnswer(a, records, problems, `${what} ${i + 1}`));
  return (performance.now() - start) / 1000;
}

async function withServer(
  env: Record<string, string>,
  run: (server: RunningServer) => Promise<Omit<CaseResult, 'idlePeak' | 'peak' | 'sampledMax'>>,
): Promise<CaseResult> {
  const csvDir = join(tempDir('bench-memory-'), 'csv');
  const server = await startServer({ CSV_DIR: csvDir, ...SAME_MALLOC, ...env });
  try {
    const pid = server.proc.pid!;
    const idlePeak = memoryOf(pid).peakRss;
    const stopSampling = sampleRss(pid);
    const result = await run(server);
    const sampledMax = stopSampling();
    const peak = memoryOf(pid).peakRss;
    return { ...result, idlePeak, peak, sampledMax };
  } finally {
    await server.stop();
    rmSync(dirname(csvDir), { recursive: true, force: true });
  }
}

/** One chunked request whose gzip body (level 1, made on the fly) decodes to ≥ `decoded` bytes. */
async function gzipCase(): Promise<CaseResult> {
  const block = taxiBody(10000, 7);
  const copies = Math.ceil(DECODED_BYTES / block.length);
  const records = copies * 10000;
  const decoded = copies * block.length;
  return withServer(
    { MAX_DECODED_BYTES: String(2 * GiB), MAX_BODY_BYTES: String(GiB) },
    async (server) => {
      const problems: string[] = [];
      const start = performance.now();
      let compressed = 0;
      const counter = new PassThrough();
      counter.on('data', (d: Buffer) => (compressed += d.length));
      const req = request(`${server.url}/ingest`, {
        method: 'POST',
        agent: false,
        headers: { 'content-type': 'application/x-ndjson', 'content-encoding': 'gzip' },
      });
      const answer = new Promise<Answer>((resolve, reject) => {
        req.on('response', (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (text += d));
          res.on('end', () => {
            let json: Answer['json'] = {};
            try {
              json = JSON.parse(text) as Answer['json'];
            } catch {
              // reported below as a wrong answer
            }
            resolve({ status: res.statusCode ?? 0, json, text });
          });
        });
        req.on('error', reject);
      });
      // An early answer (e.g. 413) ends the upload; the answer says why.
      const sent = pipeline(
        Readable.from(
          (function* () {
            for (let i = 0; i < copies; i++) yield block;
          })(),
        ),
        createGzip({ level: 1 }),
        counter,
        req,
      ).catch((err: Error) => problems.push(`gzip body: sending failed: ${err.message}`));
      const a = await answer.catch((err: Error): Answer => ({
        status: 0,
        json: {},
        text: err.message,
      }));
      await sent;
      const seconds = (performance.now() - start) / 1000;
      checkAnswer(a, records, problems, 'gzip body');
      const rows = await countRows(server.csvDir);
      if (rows !== records) problems.push(`gzip body: ${rows} rows for ${records} records`);
      return {
        name: `one gzip body decoding to ${(decoded / GiB).toFixed(2)} GiB`,
        body:
          `${decoded.toLocaleString('en-US')} bytes decoded (${records.toLocaleString('en-US')} records), ` +
          `${compressed.toLocaleString('en-US')} bytes gzip, chunked`,
        seconds,
        problems,
      };
    },
  );
}

/** `CONCURRENT` requests at once, each a ≥ 10 MiB identity body, each on its own connection. */
async function concurrentCase(): Promise<CaseResult> {
  const r = prng(11);
  let text = '';
  let records = 0;
  while (text.length < BODY_BYTES) text += taxiLine(r, records++);
  const body = Buffer.from(text);
  return withServer({}, async (server) => {
    const problems: string[] = [];
    const seconds = await sendAtOnce(server, CONCURRENT, body, records, problems, 'body');
    const rows = await countRows(server.csvDir);
    if (rows !== records * CONCURRENT) {
      problems.push(`${rows} rows for ${CONCURRENT} × ${records} records`);
    }
    return {
      name: `${CONCURRENT} concurrent ${mib(body.length)} MiB bodies`,
      body: `${CONCURRENT} × ${body.length.toLocaleString('en-US')} bytes (${records.toLocaleString('en-US')} records each), identity, Content-Length`,
      seconds,
      problems,
    };
  });
}

/** One taxi-like record padded with a long string field to exactly `bytes` bytes (with its LF). */
function longTaxiLine(r: () => number, index: number, bytes: number): string {
  const head = taxiLine(r, index).slice(0, -2); // without "}\n"
  const pad = bytes - head.length - ',"notes":""}\n'.length;
  return `${head},"notes":"${'x'.repeat(pad)}"}\n`;
}

const HUGE_CONCURRENT = QUICK ? 8 : 32;
const HUGE_LINE_BYTES = 8_000_000;
const HUGE_MAX_LINE = 8 * MiB;

/**
 * `HUGE_CONCURRENT` requests at once, each one line of 8 MB under MAX_LINE_BYTES = 8 MiB: what
 * LONG_LINE_MEMORY_BYTES bounds (src/ingest/long-line-budget.ts). With `bounded` false the bound
 * is lifted, to show what it saves.
 */
async function hugeLinesCase(bounded: boolean): Promise<CaseResult> {
  const body = Buffer.from(longTaxiLine(prng(21), 0, HUGE_LINE_BYTES));
  const env: Record<string, string> = { MAX_LINE_BYTES: String(HUGE_MAX_LINE) };
  if (!bounded) env.LONG_LINE_MEMORY_BYTES = String(2 ** 40);
  return withServer(env, async (server) => {
    const problems: string[] = [];
    const seconds = await sendAtOnce(server, HUGE_CONCURRENT, body, 1, problems, '8 MB-line body');
    const rows = await countRows(server.csvDir);
    if (rows !== HUGE_CONCURRENT) problems.push(`${rows} rows for ${HUGE_CONCURRENT} records`);
    return {
      name: `${HUGE_CONCURRENT} concurrent 8 MB lines, ${bounded ? 'LONG_LINE_MEMORY_BYTES 32 MiB (default)' : 'long-line bound off'}`,
      body: `${HUGE_CONCURRENT} × ${body.length.toLocaleString('en-US')} bytes (1 line), MAX_LINE_BYTES 8 MiB`,
      seconds,
      problems,
      // A pair to compare, not held to the target: past PIECE (1 MiB) the kernel lays its memory
      // out for the line (input, twice it for output, nesting stack, scratch: ~5 × 8 MB) in an
      // instance it does not pool, which the default MAX_LINE_BYTES never needs.
      judged: bounded,
      peakJudged: false,
    };
  });
}

/**
 * `LONG_CONCURRENT` requests at once whose bodies are lines of ~1 MB, then `ORDINARY` reference-size
 * requests one at a time: the RSS the worker keeps afterwards must be back under the target.
 */
async function longLinesCase(): Promise<CaseResult> {
  const r = prng(13);
  let text = '';
  for (let i = 0; i < LONG_LINES; i++) text += longTaxiLine(r, i, LONG_LINE_BYTES);
  const long = Buffer.from(text);
  const maxLine = loadConfig({}).maxLineBytes;
  if (long.length !== LONG_LINES * LONG_LINE_BYTES || LONG_LINE_BYTES - 1 > maxLine) {
    throw new Error(`long-line body: ${long.length} bytes, MAX_LINE_BYTES ${maxLine}`);
  }
  const ordinary = taxiBody(ORDINARY_RECORDS, 17);
  return withServer({}, async (server) => {
    const pid = server.proc.pid!;
    const problems: string[] = [];
    const rssBefore = memoryOf(pid).rss;
    const start = performance.now();
    await sendAtOnce(server, LONG_CONCURRENT, long, LONG_LINES, problems, 'long-line body');
    const rssAfterBurst = memoryOf(pid).rss;
    for (let i = 0; i < ORDINARY; i++) {
      const a = await send(`${server.url}/ingest`, ordinary, {
        headers: { 'content-type': 'application/x-ndjson' },
      });
      checkAnswer(a, ORDINARY_RECORDS, problems, `ordinary request ${i + 1}`);
    }
    const seconds = (performance.now() - start) / 1000;
    await sleep(SETTLE_MS);
    const rssAfter = memoryOf(pid).rss;
    const records = LONG_CONCURRENT * LONG_LINES + ORDINARY * ORDINARY_RECORDS;
    const rows = await countRows(server.csvDir);
    if (rows !== records) {
      problems.push(
        `${rows} rows for ${LONG_CONCURRENT} × ${LONG_LINES} + ${ORDINARY} × ${ORDINARY_RECORDS} records`,
      );
    }
    if (rssAfter > TARGET) {
      problems.push(
        `RSS ${mib(rssAfter)} MiB ${SETTLE_MS / 1000} s after the ${ORDINARY} ordinary requests, above the 200 MiB target`,
      );
    }
    console.log(
      `  RSS before ${mib(rssBefore)} MiB, after the burst ${mib(rssAfterBurst)} MiB, ` +
        `after the ordinary requests ${mib(rssAfter)} MiB`,
    );
    return {
      name: `${LONG_CONCURRENT} concurrent bodies of ~1 MB lines, then ${ORDINARY} ordinary requests`,
      body:
        `${LONG_CONCURRENT} × ${long.length.toLocaleString('en-US')} bytes (${LONG_LINES} lines of ` +
        `${LONG_LINE_BYTES.toLocaleString('en-US')} bytes), then ${ORDINARY} × ` +
        `${ordinary.length.toLocaleString('en-US')} bytes (${ORDINARY_RECORDS.toLocaleString('en-US')} records) one at a time`,
      seconds,
      rssBefore,
      rssAfter,
      problems,
    };
  });
}

async function main(): Promise<void> {
  const defaults = loadConfig({});
  console.log(
    `MAX_DECODED_BYTES default: ${defaults.maxDecodedBytes.toLocaleString('en-US')} ` +
      `(${defaults.maxDecodedBytes === GiB ? '1 GiB' : 'not 1 GiB'}); this run sets 2 GiB. ` +
      `MAX_BODY_BYTES default: ${defaults.maxBodyBytes.toLocaleString('en-US')}; 1 GiB for the gzip case.`,
  );
  const cases: CaseResult[] = [];
  // MEMORY_CASES=gzip,concurrent,huge,huge-unbounded,long: only these (all by default).
  const only = process.env.MEMORY_CASES?.split(',');
  const all = {
    gzip: gzipCase,
    concurrent: concurrentCase,
    huge: () => hugeLinesCase(true),
    'huge-unbounded': () => hugeLinesCase(false),
    long: longLinesCase,
  };
  const chosen = Object.entries(all).filter(([name]) => only === undefined || only.includes(name));
  if (chosen.length === 0)
    throw new Error(`MEMORY_CASES=${process.env.MEMORY_CASES}: gzip, concurrent, long`);
  for (const [, run] of chosen) {
    const c = await run();
    console.log(
      `${c.name}: peak RSS ${mib(c.peak)} MiB (idle ${mib(c.idlePeak)} MiB, largest sample ${mib(c.sampledMax)} MiB), ${c.seconds.toFixed(1)} s` +
        (c.rssAfter !== undefined
          ? `; RSS before ${mib(c.rssBefore!)} MiB, after ${mib(c.rssAfter)} MiB`
          : '') +
        (c.problems.length > 0
          ? `\n  ${c.judged === false ? 'not judged:' : 'FAIL'} ${c.problems.slice(0, 5).join(`\n  ${c.judged === false ? 'not judged:' : 'FAIL'} `)}`
          : ''),
    );
    cases.push(c);
  }

  const verdict = (c: CaseResult) =>
    c.judged === false || c.peakJudged === false ? 'INFO' : c.peak <= TARGET ? 'PASS' : 'MISS';
  const afterVerdict = (c: CaseResult) => (c.rssAfter! <= TARGET ? 'PASS' : 'FAIL');
  const beforeAfter = (c: CaseResult) =>
    c.rssAfter === undefined ? '–' : `${mib(c.rssBefore!)} → ${mib(c.rssAfter)}`;
  const targets = cases.flatMap((c) => [
    verdict(c) === 'INFO'
      ? `INFO  peak RSS per worker, ${c.name}: ${mib(c.peak)} MiB (a comparison, not held to the target)`
      : `${verdict(c)}  peak RSS per worker ≤ 200 MiB, ${c.name}: ${mib(c.peak)} MiB`,
    ...(c.rssAfter === undefined
      ? []
      : [
          `${afterVerdict(c)}  RSS after the ordinary requests ≤ 200 MiB, ${c.name}: ${mib(c.rssAfter)} MiB (before: ${mib(c.rssBefore!)} MiB)`,
        ]),
  ]);
  const problems = cases.filter((c) => c.judged !== false).flatMap((c) => c.problems);
  const compared = cases
    .filter((c) => c.judged === false)
    .map((c) => {
      const statuses = c.problems.filter((p) => / 503 /.test(p)).length;
      return `${c.name}: ${c.problems.length === 0 ? 'every answer a 200' : `${c.problems.length} problem(s)${statuses > 0 ? `, ${statuses} of them 503 (the worker too far behind to admit)` : ''}`}`;
    });
  const command = QUICK ? 'BENCH_QUICK=1 npm run bench:memory' : 'npm run bench:memory';
  const section = [
    'One worker, `node dist/main.js` started as `npm run start:single` starts it (`MALLOC_TRIM_THRESHOLD_=33554432`), a fresh process per case, default settings except where noted; ' +
      'peak RSS is the kernel high-water mark (VmHWM in `/proc/<pid>/status`) after the load. ' +
      'All requests go to this one worker (under pm2 they would be spread over the workers). ' +
      `RSS before → after is VmRSS before the load and ${SETTLE_MS / 1000} s after its last request (the case that ends with ordinary requests).` +
      (QUICK ? ' **Smoke run (BENCH_QUICK=1), not a measurement.**' : ''),
    '',
    '| case | body | time s | idle peak RSS MiB | peak RSS MiB | RSS before → after MiB | target ≤ 200 MiB |',
    '|---|---|---:|---:|---:|---:|---|',
    ...cases.map(
      (c) =>
        `| ${c.name} | ${c.body} | ${c.seconds.toFixed(1)} | ${mib(c.idlePeak)} | ${mib(c.peak)} | ${beforeAfter(c)} | ` +
        `${c.rssAfter === undefined ? verdict(c) : `peak ${verdict(c)}, after ${afterVerdict(c)}`} |`,
    ),
    '',
    `MAX_DECODED_BYTES: default ${defaults.maxDecodedBytes.toLocaleString('en-US')}, 2 GiB for the gzip case ` +
      `(MAX_BODY_BYTES 1 GiB). Checks: every answer a 200 counting every record, one CSV row per record, ` +
      `RSS after the ordinary requests ≤ 200 MiB: ` +
      (problems.length > 0 ? `**FAIL** ${problems.join('; ')}` : 'passed') +
      '.' +
      (compared.length > 0 ? ` Not judged (comparison): ${compared.join('; ')}.` : ''),
    '',
    '```',
    ...targets,
    '```',
    '',
    ...provenance(command),
  ].join('\n');
  console.log(`\n${section}`);
  mkdirSync(RESULTS, { recursive: true });
  // A smoke run or a run of some cases only never replaces the measurement in BENCHMARKS.md.
  const partial = QUICK || process.env.MEMORY_CASES !== undefined;
  const target = partial
    ? new URL('BENCHMARKS-quick.md', RESULTS)
    : new URL('../BENCHMARKS.md', import.meta.url);
  await writeSection(target, 'memory', section);
  console.log(
    `\nwrote the memory section of ${partial ? 'bench/results/BENCHMARKS-quick.md' : 'BENCHMARKS.md'}`,
  );
  if (problems.length > 0) process.exitCode = 1;
}

await main();
