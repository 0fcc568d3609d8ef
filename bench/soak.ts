/**
 * npm run soak -- --minutes N [--rate R] [--write]
 *
 * A long run of the real cluster (pm2, 2 workers, as `npm start` runs it) under a steady mixed load
 * with faults injected on a schedule, then a full check of what was written (issue 17). No k6.
 *
 * Load: R requests per second (default 40), at most 8 in flight (the concurrencies of
 * k6/scenarios.json go up to 8), each with 1–200 rows tagged with the request's number and the
 * row's index; every fifth body gzip, every seventh chunked.
 * Faults, in turn, evenly over the run: `kill -9` of a worker (pm2 starts another), a rename of the
 * day file (log rotation), `pm2 reload`, and, when running as root, a full disk: the CSV folder is
 * a tmpfs, filled to ENOSPC for 3 s, then emptied.
 *
 * Checks at the end, over every CSV file of the folder (rotated ones too):
 * - every line a whole row; the rows of each request contiguous, in order, at most once;
 * - every acknowledged (200) request's rows present once: lost, duplicated and torn must be 0;
 * - no rows of a request that got an error answer (a failed request writes nothing);
 * - requests whose answer never came (the worker was killed) wrote all their rows or none;
 * - RSS and open descriptors of the workers, sampled every 2 s: the median of the last quarter
 *   of the run may not pass the first quarter's (after a warm-up) by more than 25 % + 16 MiB and 8
 *   descriptors.
 * Writes bench/results/soak.html (RSS and descriptors over time); with --write, the soak section
 * of BENCHMARKS.md. Exits 1 when a check fails.
 */
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { gzipSync } from 'node:zlib';
import { localDay } from '../src/csv/csv-committer.js';
import { startCluster, type Pm2Cluster } from '../test/support/pm2.js';
import { tempDir } from '../test/support/server.js';
import { htmlPage, lineChart, type Series } from './html-report.js';
import { machine, median } from './report.js';
import { publishSection } from './write-section.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

const MINUTES = arg('minutes', 1);
const RATE = arg('rate', 40);
const MAX_IN_FLIGHT = 8;
const DURATION_MS = MINUTES * 60_000;
const ROOT_USER = process.getuid?.() === 0;
const ROW = /^s(\d+),2017-01-01 00:00:00,(\d+),1$/;

interface Sent {
  rows: number;
  status: number;
  /** The error answer's code, or the connection error's. */
  code?: string;
}

function bodyOf(r: number, rows: number): Buffer {
  let text = '';
  for (let i = 0; i < rows; i++) {
    text += `{"vendorid":"s${r}","tpep_pickup_datetime":"2017-01-01 00:00:00","trip_distance":${i},"total_amount":1}\n`;
  }
  return Buffer.from(text);
}

function send(url: string, agent: Agent, r: number, rows: number): Promise<Sent> {
  const raw = bodyOf(r, rows);
  const gzip = r % 5 === 0;
  const body = gzip ? gzipSync(raw) : raw;
  const chunked = r % 7 === 0;
  const headers: Record<string, string | number> = {};
  if (gzip) headers['content-encoding'] = 'gzip';
  if (!chunked) headers['content-length'] = body.length;
  return new Promise((resolve) => {
    const req = request(url, { method: 'POST', agent, headers }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => {
        let code: string | undefined;
        try {
          code = (JSON.parse(text) as { result?: { error?: { code?: string } } }).result?.error
            ?.code;
        } catch {
          code = 'unparsable_answer';
        }
        resolve({ rows, status: res.statusCode ?? 0, code });
      });
      res.on('error', (e: NodeJS.ErrnoException) =>
        resolve({ rows, status: 0, code: e.code ?? e.message }),
      );
    });
    req.setTimeout(30_000, () =>
      req.destroy(Object.assign(new Error('timeout'), { code: 'timeout' })),
    );
    req.on('error', (e: NodeJS.ErrnoException) =>
      resolve({ rows, status: 0, code: e.code ?? e.message }),
    );
    if (chunked) {
      req.write(body.subarray(0, body.length >> 1));
      req.end(body.subarray(body.length >> 1));
    } else {
      req.end(body);
    }
  });
}

interface Sample {
  t: number;
  pid: number;
  rss: number;
  fds: number;
}

function sampleWorker(pid: number): { rss: number; fds: number } | null {
  try {
    const rss =
      Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
    return { rss, fds: readdirSync(`/proc/${pid}/fd`).length };
  } catch {
    return null; // it just exited
  }
}

async function fillDisk(dir: string, holdMs: number): Promise<void> {
  const filler = join(dir, 'soak-filler');
  const fd = openSync(filler, 'w');
  const mb = Buffer.alloc(1 << 20, 0x78);
  try {
    for (;;) writeSync(fd, mb);
  } catch {
    // ENOSPC: the disk is full
  }
  closeSync(fd);
  await sleep(holdMs);
  unlinkSync(filler);
}

async function main(): Promise<void> {
  const base = tempDir('soak-');
  const csvDir = join(base, 'csv');
  mkdirSync(csvDir);
  if (ROOT_USER) execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1g', 'tmpfs', csvDir]);
  let cluster: Pm2Cluster | undefined;
  try {
    cluster = await startCluster(2, {
      CSV_DIR: csvDir,
      CSV_EOL: 'lf',
      // The health threshold would make /health 503 on a 1 GiB tmpfs; ingest does not read it.
      HEALTH_MIN_FREE_BYTES: '0',
      METRICS_TIMEOUT_MS: '10000',
    });
    const c = cluster;
    const url = `${c.url}/ingest`;
    const agent = new Agent({ keepAlive: true, maxSockets: MAX_IN_FLIGHT });
    const outcomes = new Map<number, Sent>();
    const samples: Sample[] = [];
    const faults: { t: number; what: string; detail: string }[] = [];
    const start = performance.now();
    const elapsed = () => performance.now() - start;

    // Faults, in turn, evenly spaced after the first tenth of the run.
    const kinds = ['kill -9 of a worker', 'rename of the day file', 'pm2 reload'];
    if (ROOT_USER) kinds.push('full disk for 3 s');
    const count = Math.max(kinds.length, Math.floor(MINUTES * 2));
    const faultTimes = Array.from(
      { length: count },
      (_, k) => DURATION_MS * (0.1 + (0.8 * k) / count),
    );
    let rotations = 0;
    const faultLoop = (async () => {
      for (const [k, at] of faultTimes.entries()) {
        await sleep(Math.max(0, at - elapsed()));
        const what = kinds[k % kinds.length];
        let detail = '';
        try {
          if (what.startsWith('kill')) {
            const online = (await c.workers()).filter((w) => w.status === 'online');
            const victim = online[k % online.length];
            process.kill(victim.pid, 'SIGKILL');
            detail = `pid ${victim.pid}`;
          } else if (what.startsWith('rename')) {
            const day = join(csvDir, `nyc_taxi-${localDay(new Date())}.csv`);
            if (existsSync(day)) renameSync(day, `${day}.${++rotations}`);
            detail = `to .${rotations}`;
          } else if (what.startsWith('pm2')) {
            await c.pm2('reload', 'ndjson-ingest');
          } else {
            await fillDisk(csvDir, 3000);
          }
        } catch (err) {
          detail = `failed: ${(err as Error).message}`;
        }
        faults.push({ t: Math.round(at / 1000), what, detail });
        console.log(`${(elapsed() / 1000).toFixed(0)} s: ${what} ${detail}`);
      }
    })();

    const sampleLoop = (async () => {
      while (elapsed() < DURATION_MS) {
        try {
          for (const w of await c.workers()) {
            if (w.status !== 'online') continue;
            const s = sampleWorker(w.pid);
            if (s !== null) samples.push({ t: elapsed() / 1000, pid: w.pid, ...s });
          }
        } catch {
          // pm2 busy with a reload: next time
        }
        await sleep(2000);
      }
    })();

    // The load: RATE arrivals per second, at most MAX_IN_FLIGHT at once (skipped beyond).
    let next = 0;
    let inFlight = 0;
    let skipped = 0;
    const pending: Promise<void>[] = [];
    while (elapsed() < DURATION_MS) {
      const due = Math.floor((elapsed() / 1000) * RATE);
      while (next < due) {
        const r = next++;
        if (inFlight >= MAX_IN_FLIGHT) {
          skipped++;
          continue;
        }
        inFlight++;
        const rows = 1 + ((r * 7919) % 200);
        pending.push(
          send(url, agent, r, rows).then((o) => {
            outcomes.set(r, o);
            inFlight--;
          }),
        );
      }
      await sleep(5);
    }
    await Promise.all(pending);
    await faultLoop;
    await sampleLoop;
    agent.destroy();

    // What was written: every CSV file of the folder, in name order (rotated ones first).
    const files = readdirSync(csvDir)
      .filter((f) => /^nyc_taxi-.*\.csv(\.\d+)?$/.test(f))
      .sort(
        (a, b) => (a.endsWith('.csv') ? 1 : 0) - (b.endsWith('.csv') ? 1 : 0) || a.localeCompare(b),
      );
    let torn = 0;
    const runs = new Map<number, number[][]>(); // request → its runs of row indexes
    for (const f of files) {
      let last = -1;
      for (const line of readFileSync(join(csvDir, f), 'utf8').split('\n')) {
        if (line === '') continue;
        const m = ROW.exec(line);
        if (m === null) {
          torn++;
          last = -1;
          continue;
        }
        const r = Number(m[1]);
        const list = runs.get(r) ?? [];
        if (r !== last) list.push([]);
        list[list.length - 1].push(Number(m[2]));
        runs.set(r, list);
        last = r;
      }
    }
    const whole = (r: number, rows: number): boolean => {
      const list = runs.get(r) ?? [];
      return list.length === 1 && list[0].length === rows && list[0].every((i, k) => i === k);
    };
    let ackedLost = 0;
    let ackedDuplicated = 0;
    let ackedTorn = 0;
    let failedWritten = 0;
    let unknownTorn = 0;
    let unknownWritten = 0;
    const causes = new Map<string, number>();
    for (const [r, o] of outcomes) {
      const list = runs.get(r) ?? [];
      if (o.status === 200) {
        if (list.length === 0) ackedLost++;
        else if (list.length > 1) ackedDuplicated++;
        else if (!whole(r, o.rows)) ackedTorn++;
        continue;
      }
      const cause = o.status === 0 ? `no answer: ${o.code}` : `${o.status} ${o.code}`;
      causes.set(cause, (causes.get(cause) ?? 0) + 1);
      if (o.status !== 0 && list.length > 0) failedWritten++;
      if (o.status === 0 && list.length > 0) {
        if (whole(r, o.rows)) unknownWritten++;
        else unknownTorn++;
      }
    }
    for (const r of runs.keys()) if (!outcomes.has(r)) failedWritten++; // rows nobody sent

    // Growth of RSS and descriptors: the max over the workers at each sample time.
    const byTime = new Map<number, { rss: number; fds: number }>();
    for (const s of samples) {
      const t = Math.round(s.t / 2) * 2;
      const cur = byTime.get(t) ?? { rss: 0, fds: 0 };
      byTime.set(t, { rss: Math.max(cur.rss, s.rss), fds: Math.max(cur.fds, s.fds) });
    }
    const series = [...byTime.entries()].sort((a, b) => a[0] - b[0]);
    const quarter = (k: number) =>
      series.slice(Math.floor((series.length * k) / 4), Math.floor((series.length * (k + 1)) / 4));
    const firstQ = quarter(0).slice(2); // after a warm-up
    const lastQ = quarter(3);
    const mib = (b: number) => b / 2 ** 20;
    const rssFirst = median(firstQ.map(([, v]) => v.rss));
    const rssLast = median(lastQ.map(([, v]) => v.rss));
    const fdsFirst = median(firstQ.map(([, v]) => v.fds));
    const fdsLast = median(lastQ.map(([, v]) => v.fds));
    const acked = [...outcomes.values()].filter((o) => o.status === 200).length;

    const checks: [string, boolean, string][] = [
      ['acknowledged rows lost', ackedLost === 0, String(ackedLost)],
      ['acknowledged requests duplicated', ackedDuplicated === 0, String(ackedDuplicated)],
      ['acknowledged requests torn', ackedTorn === 0, String(ackedTorn)],
      ['lines that are not whole rows', torn === 0, String(torn)],
      ['rows of requests that got an error answer', failedWritten === 0, String(failedWritten)],
      ['unanswered requests written in part', unknownTorn === 0, String(unknownTorn)],
      [
        'worker RSS does not grow (last quarter ≤ first × 1.25 + 16 MiB)',
        rssLast <= rssFirst * 1.25 + 16 * 2 ** 20,
        `${mib(rssFirst).toFixed(1)} → ${mib(rssLast).toFixed(1)} MiB`,
      ],
      [
        'worker descriptors do not grow (last quarter ≤ first + 8)',
        fdsLast <= fdsFirst + 8,
        `${fdsFirst} → ${fdsLast}`,
      ],
    ];
    const failed = checks.filter(([, ok]) => !ok);
    const section = [
      `${MINUTES} min, ${RATE} requests/s arriving (at most ${MAX_IN_FLIGHT} in flight; ${skipped} arrivals skipped while ${MAX_IN_FLIGHT} were), ` +
        `1–200 tagged rows each, every fifth gzip, every seventh chunked; pm2, 2 workers; CSV folder on ${ROOT_USER ? 'a 1 GiB tmpfs' : 'the system disk (not root: no full-disk fault)'}.`,
      '',
      `Requests: ${outcomes.size.toLocaleString('en-US')} sent, ${acked.toLocaleString('en-US')} acknowledged; unanswered but written whole: ${unknownWritten}.`,
      '',
      `Faults (${faults.length}): ${faults.map((f) => `${f.t} s ${f.what}${f.detail === '' ? '' : ` (${f.detail})`}`).join('; ')}.`,
      '',
      'Failed requests by cause: ' +
        ([...causes.entries()].map(([k, v]) => `${k} × ${v}`).join(', ') || 'none') +
        '.',
      '',
      '```',
      ...checks.map(([what, ok, detail]) => `${ok ? 'PASS' : 'FAIL'}  ${what}: ${detail}`),
      '```',
      '',
      `Chart: \`bench/results/soak.html\` (generated, not committed). Machine: ${machine()}. ` +
        `Command: \`npm run soak -- --minutes ${MINUTES}\`. Date: ${new Date().toISOString().slice(0, 10)}.`,
    ].join('\n');

    const colors = ['#1f5fbf', '#d9730d', '#2e9e5b', '#8e44ad', '#c0392b', '#16a085', '#6b6b6b'];
    const pids = [...new Set(samples.map((s) => s.pid))];
    const perPid = (f: (s: Sample) => number): Series[] =>
      pids.map((pid, i) => ({
        name: `worker ${pid}`,
        color: colors[i % colors.length],
        points: samples.filter((s) => s.pid === pid).map((s) => [s.t, f(s)] as const),
        markers: true,
      }));
    mkdirSync(new URL('results/', import.meta.url), { recursive: true });
    writeFileSync(
      new URL('results/soak.html', import.meta.url),
      htmlPage('ndjson-ingest soak', [
        lineChart({
          title: 'RSS per worker',
          xLabel: 's',
          yLabel: 'MiB',
          series: perPid((s) => mib(s.rss)),
        }),
        lineChart({
          title: 'Open descriptors per worker',
          xLabel: 's',
          yLabel: 'descriptors',
          series: perPid((s) => s.fds),
        }),
        `<pre>${section.replace(/&/g, '&amp;').replace(/</g, '&lt;')}</pre>`,
      ]),
    );
    await publishSection('soak', section);
    if (failed.length > 0) process.exitCode = 1;
  } finally {
    await cluster?.kill();
    if (ROOT_USER) execFileSync('umount', [csvDir]);
    rmSync(base, { recursive: true, force: true });
  }
}

await main();
