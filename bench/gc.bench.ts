/**
 * npm run bench:gc [-- --write]
 *
 * What the heap tuning is worth (src/runtime/heap-tuning.ts, src/runtime/malloc-tuning.ts): WORKERS (default 3)
 * fresh workers as shipped, beside as many started with `--heap-growing-percent=0` (V8's own
 * heuristic, which the command line restores) and as many without `MALLOC_TRIM_THRESHOLD_`
 * (glibc's default: the top of the heap goes back to the kernel once 128 KiB of it are free, and
 * may be faulted in again for the next requests), one `node dist/main.js` each. Every worker takes WARMUP (default 500)
 * requests, then all sit idle for IDLE_MS (default 12,000: long enough for V8's memory reducer,
 * as between a quiet night and a busy morning), then ROUNDS (default 5) × REQUESTS (default 400)
 * at CONCURRENCY (default 4), interleaved. Full and young-generation GCs are read from each
 * worker's own /metrics (`nodejs_gc_duration_seconds_count`), CPU and page faults from /proc.
 *
 * With --write, the table replaces the gc section of BENCHMARKS.md.
 */
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { gcCounts, procStat, startServer, type RunningServer } from '../test/support/server.js';
import { referenceBody } from '../test/support/taxi.js';
import { loadScenarios, memoryOf, runLoad, statsOf } from './load.js';
import { median, provenance } from './report.js';
import { SAME_MALLOC } from './servers.js';
import { publishSection } from './write-section.js';

const WORKERS = Number(process.env.WORKERS ?? 3);
const WARMUP = Number(process.env.WARMUP ?? 500);
const IDLE_MS = Number(process.env.IDLE_MS ?? 12000);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const REQUESTS = Number(process.env.REQUESTS ?? 400);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 4);

const { body } = referenceBody();
const records = loadScenarios().expect.valid;

/**
 * As shipped = as `npm start` and `npm run start:single` run a worker: the V8 flag it sets itself
 * (src/runtime/heap-tuning.ts) and glibc's trim threshold from its start environment (src/runtime/malloc-tuning.ts).
 */
const VARIANTS: { name: string; nodeArgs: string[]; env: Record<string, string> }[] = [
  { name: 'as shipped', nodeArgs: [], env: SAME_MALLOC },
  { name: 'V8 heuristic', nodeArgs: ['--heap-growing-percent=0'], env: SAME_MALLOC },
  { name: "glibc's default trim", nodeArgs: [], env: {} },
];

interface Worker {
  variant: string;
  server: RunningServer;
  /** Per round: CPU ms per request, of it system time, minor page faults per request. */
  cpu: number[];
  sys: number[];
  faults: number[];
  requests: number;
  gc0: Record<string, number>;
  gc1: Record<string, number>;
}

function signedPercent(x: number): string {
  return `${x >= 0 ? '+' : '−'}${Math.abs(100 * x).toFixed(0)} %`;
}

async function load(
  w: Worker,
  amount: number,
): Promise<{ cpu: number; sys: number; faults: number }> {
  const pid = w.server.proc.pid!;
  const p0 = procStat(pid);
  const r = await runLoad({
    url: `${w.server.url}/ingest`,
    body,
    connections: CONCURRENCY,
    amount,
    verifyBody: (text) => statsOf(text)?.records?.valid === records,
  });
  if (r.ok !== amount || r.mismatches > 0) {
    throw new Error(`${w.variant}: ${r.ok} of ${amount} answered 2xx, ${r.mismatches} bad`);
  }
  const p1 = procStat(pid);
  return {
    cpu: (p1.userMs + p1.systemMs - p0.userMs - p0.systemMs) / r.ok,
    sys: (p1.systemMs - p0.systemMs) / r.ok,
    faults: (p1.minorFaults - p0.minorFaults) / r.ok,
  };
}

const workers: Worker[] = [];
try {
  for (let i = 0; i < WORKERS; i++) {
    for (const v of VARIANTS) {
      const server = await startServer({ LOG_LEVEL: 'info', ...v.env }, v.nodeArgs);
      workers.push({
        variant: v.name,
        server,
        cpu: [],
        sys: [],
        faults: [],
        requests: 0,
        gc0: {},
        gc1: {},
      });
    }
  }
  for (const w of workers) await load(w, WARMUP);
  console.log(`warmed up; idle for ${IDLE_MS} ms`);
  await new Promise((resolve) => setTimeout(resolve, IDLE_MS));
  for (const w of workers) w.gc0 = await gcCounts(w.server.url);
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < workers.length; k++) {
      const w = workers[(round + k) % workers.length]; // rotate who runs first
      const m = await load(w, REQUESTS);
      w.cpu.push(m.cpu);
      w.sys.push(m.sys);
      w.faults.push(m.faults);
      w.requests += REQUESTS;
    }
    console.log(
      `round ${round + 1}: ${workers.map((w) => `${w.variant} ${w.cpu[round].toFixed(2)}`).join(', ')} ms/req`,
    );
  }
  for (const w of workers) w.gc1 = await gcCounts(w.server.url);

  const per1000 = (w: Worker, kind: string) =>
    (((w.gc1[kind] ?? 0) - (w.gc0[kind] ?? 0)) * 1000) / w.requests;
  const rows = workers.map(
    (w, i) =>
      `| ${w.variant} | ${Math.floor(i / VARIANTS.length) + 1} | ${median(w.cpu).toFixed(2)} | ` +
      `${Math.min(...w.cpu).toFixed(2)}–${Math.max(...w.cpu).toFixed(2)} | ` +
      `${median(w.sys).toFixed(2)} | ${median(w.faults).toFixed(1)} | ` +
      `${per1000(w, 'major').toFixed(1)} | ${per1000(w, 'minor').toFixed(1)} | ` +
      `${(memoryOf(w.server.proc.pid!).peakRss / 2 ** 20).toFixed(0)} |`,
  );
  const of = (name: string) => workers.filter((w) => w.variant === name);
  const cpuOf = (name: string) => median(of(name).flatMap((w) => w.cpu));
  const [shipped, heuristic, untrimmed] = VARIANTS.map((v) => cpuOf(v.name));
  const section = [
    `${WORKERS} fresh workers per variant (\`node dist/main.js\`, one log line per request; as shipped = as \`npm run start:single\` starts it, with \`MALLOC_TRIM_THRESHOLD_=33554432\`), the load generator (autocannon, keep-alive) on the other core: ${WARMUP} warm-up requests each, all idle for ${(IDLE_MS / 1000).toFixed(0)} s, then ${ROUNDS} interleaved rounds × ${REQUESTS} requests of the reference body at concurrency ${CONCURRENCY}. GCs from each worker's \`/metrics\` over the rounds; CPU: user + system time per request, and of it the system time, with the minor page faults (\`/proc/<pid>/stat\`); peak RSS: VmHWM.`,
    '',
    '| variant | worker | CPU ms/request, median | range | of it system, ms | minor page faults / req | full GCs / 1,000 req | young-generation GCs / 1,000 req | peak RSS MiB |',
    '|---|---:|---:|---|---:|---:|---:|---:|---:|',
    ...rows,
    '',
    `Median over all rounds: as shipped **${shipped.toFixed(2)} ms** per request; V8's heuristic **${heuristic.toFixed(2)} ms** (${((100 * (heuristic - shipped)) / heuristic).toFixed(0)} % less CPU as shipped); with glibc's default trim threshold (128 KiB) instead of 32 MiB **${untrimmed.toFixed(2)} ms** (${signedPercent(untrimmed / shipped - 1)} against as shipped).`,
    '',
    ...provenance('npm run bench:gc -- --write'),
  ].join('\n');
  await publishSection('gc', section);
} finally {
  for (const w of workers) {
    await w.server.stop();
    rmSync(dirname(w.server.csvDir), { recursive: true, force: true });
  }
}
