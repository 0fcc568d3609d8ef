/**
 * npm run bench:profile [-- --write]
 *
 * Where one worker's time goes, from V8's sampling profiler: the built service as
 * `npm run start:single` runs it, the load generator (autocannon, keep-alive) on the other core,
 * WARMUP (default 3,000) requests of the reference body at CONCURRENCY (default 4), then the
 * profiler over REQUESTS (default 8,000) more. The profiler runs only around the measured requests
 * (bench/profile/register.mjs, started and stopped by SIGUSR2), so start-up and warm-up are not in
 * it.
 *
 * Writes bench/results/profile/service.cpuprofile: a flame graph in Chrome DevTools (Performance,
 * "Load profile") or speedscope.app. Prints the main thread's busy time split into the parts of
 * the service, and the functions with the most self time. Each sample goes to the part of the
 * nearest frame of its stack that belongs to one (so the native write under a commit counts as
 * commit, and `isUtf8` under the transform as the transform). With --write, the summary replaces
 * the profile section of BENCHMARKS.md.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT, startServer } from '../test/support/server.js';
import { referenceBody } from '../test/support/taxi.js';
import { cpuMs, loadScenarios, runLoad, statsOf } from './load.js';
import { provenance } from './report.js';
import { SAME_MALLOC } from './servers.js';
import { publishSection } from './write-section.js';

const WARMUP = Number(process.env.WARMUP ?? 3000);
const REQUESTS = Number(process.env.REQUESTS ?? 8000);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 4);
const INTERVAL_US = Number(process.env.PROFILE_INTERVAL_US ?? 250);
const OUT_DIR = join(ROOT, 'bench', 'results', 'profile');
const OUT = join(OUT_DIR, 'service.cpuprofile');
const HOOK = pathToFileURL(join(ROOT, 'bench', 'profile', 'register.mjs')).href;

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** The parts of the service, checked from a sample's leaf frame towards the root. */
const PARTS: { name: string; owns: (f: CallFrame) => boolean }[] = [
  {
    name: 'WebAssembly kernel: validate, extract, write CSV',
    owns: (f) =>
      f.url.startsWith('wasm://') ||
      f.functionName.startsWith('wasm-function') ||
      f.functionName.startsWith('src/ingest/core/kernel/'),
  },
  {
    name: 'around the kernel: copies in and out, `isUtf8`, partial lines',
    owns: (f) => f.url.includes('/dist/ingest/core/'),
  },
  {
    name: 'pending rows and the commit: lock, record, stats, the write',
    owns: (f) => f.url.includes('/dist/csv/'),
  },
  {
    name: 'our request handling: admission, body limits and timers, answer',
    owns: (f) => /\/dist\/(ingest\/|main\.js|errors\.js|http-answers\.js)/.test(f.url),
  },
  {
    name: 'metrics',
    owns: (f) => /\/dist\/metrics\/|\/node_modules\/prom-client\//.test(f.url),
  },
  {
    name: 'request log line (pino)',
    owns: (f) => /\/node_modules\/(pino|sonic-boom|thread-stream)\//.test(f.url),
  },
  { name: 'Nest', owns: (f) => f.url.includes('/node_modules/@nestjs/') },
  {
    name: 'Fastify',
    owns: (f) =>
      /\/node_modules\/(fastify|@fastify|find-my-way|avvio|fast-json-stringify)\//.test(f.url),
  },
  {
    name: "Node's HTTP parser, sockets and streams",
    owns: (f) =>
      /^node:(_http_|net$|stream|internal\/(streams|stream_base|http|js_stream))/.test(f.url),
  },
  {
    name: 'garbage collection (main thread)',
    owns: (f) => f.functionName === '(garbage collector)',
  },
];
const OTHER = 'other: timers, promises, V8 and Node internals';

function shortUrl(url: string): string {
  if (url.startsWith('file://')) return relative(ROOT, new URL(url).pathname);
  return url;
}

function summarise(profile: CpuProfile, requests: number) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Sample i lasted until sample i + 1; the last one's duration is unknown and left out.
  const selfUs = new Map<number, number>();
  for (let i = 0; i + 1 < profile.samples.length; i++) {
    const id = profile.samples[i];
    selfUs.set(id, (selfUs.get(id) ?? 0) + profile.timeDeltas[i + 1]);
  }
  const parts = new Map<string, number>();
  const functions = new Map<string, number>();
  let busyUs = 0;
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const leaf = byId.get(id)!.callFrame;
    if (leaf.functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    busyUs += us;
    let part = OTHER;
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = byId.get(at)!.callFrame;
      const owner = PARTS.find((p) => p.owns(frame));
      if (owner !== undefined) {
        part = owner.name;
        break;
      }
    }
    parts.set(part, (parts.get(part) ?? 0) + us);
    const where =
      leaf.url === ''
        ? '(native)'
        : leaf.url.startsWith('wasm://')
          ? '(WebAssembly)'
          : `${shortUrl(leaf.url)}:${leaf.lineNumber + 1}`;
    const name = `${leaf.functionName || '(anonymous)'} ${where}`;
    functions.set(name, (functions.get(name) ?? 0) + us);
  }
  const perRequest = (us: number) => us / 1000 / requests;
  return {
    busyMs: perRequest(busyUs),
    idleMs: perRequest(idleUs),
    parts: [...PARTS.map((p) => p.name), OTHER].map((name) => ({
      name,
      ms: perRequest(parts.get(name) ?? 0),
      share: (parts.get(name) ?? 0) / busyUs,
    })),
    top: [...functions]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 12)
      .map(([name, us]) => ({ name, ms: perRequest(us), share: us / busyUs })),
  };
}

function waitForProfiler(proc: ChildProcess, state: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`profiler not ${state} after 30 s`)), 30000);
    const onMessage = (m: { profiler?: string; message?: string }) => {
      if (m?.profiler === undefined) return;
      clearTimeout(timer);
      proc.off('message', onMessage);
      if (m.profiler === state) resolve();
      else reject(new Error(`profiler ${m.profiler}: ${m.message ?? ''}`));
    };
    proc.on('message', onMessage);
    proc.kill('SIGUSR2');
  });
}

const { body } = referenceBody();
const records = loadScenarios().expect.valid;
mkdirSync(OUT_DIR, { recursive: true });
rmSync(OUT, { force: true });
const server = await startServer({
  ...SAME_MALLOC,
  LOG_LEVEL: 'info',
  NODE_OPTIONS: `--import=${HOOK}`,
  PROFILE_OUT: OUT,
  PROFILE_INTERVAL_US: String(INTERVAL_US),
});
try {
  const load = async (amount: number) => {
    const r = await runLoad({
      url: `${server.url}/ingest`,
      body,
      connections: CONCURRENCY,
      amount,
      verifyBody: (text) => statsOf(text)?.records?.valid === records,
    });
    if (r.ok !== amount || r.mismatches > 0) {
      throw new Error(`${r.ok} of ${amount} answered 2xx, ${r.mismatches} bad`);
    }
    return r;
  };
  const pid = server.proc.pid!;
  await load(WARMUP);
  await waitForProfiler(server.proc, 'started');
  const cpu0 = cpuMs([pid]);
  const run = await load(REQUESTS);
  const cpu = (cpuMs([pid]) - cpu0) / run.ok;
  await waitForProfiler(server.proc, 'written');
  if (!existsSync(OUT)) throw new Error(`${OUT} was not written`);
  const s = summarise(JSON.parse(readFileSync(OUT, 'utf8')) as CpuProfile, run.ok);
  const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
  const section = [
    `One worker, \`node dist/main.js\` as \`npm run start:single\` starts it (one log line per request), the load generator (autocannon, keep-alive) on the other core; ${WARMUP.toLocaleString('en-US')} warm-up requests of the reference body (${body.length.toLocaleString('en-US')} bytes) at concurrency ${CONCURRENCY}, then V8's sampling profiler (every ${INTERVAL_US} µs) over ${REQUESTS.toLocaleString('en-US')} more. Each sample counts for the nearest frame of its stack that belongs to a part (the native write under a commit is commit, \`isUtf8\` under the transform is the transform).`,
    '',
    `CPU over the profiled requests, all threads (\`/proc/<pid>/stat\`): **${cpu.toFixed(2)} ms per request**. The main thread's busy time in the profile: ${s.busyMs.toFixed(2)} ms per request (idle ${s.idleMs.toFixed(2)}); the difference is other threads: V8's helpers (parallel scavenges, concurrent marking, compilation) and the profiler's own sampling thread.`,
    '',
    '| part | ms / request | share of busy time |',
    '|---|---:|---:|',
    ...s.parts.map((p) => `| ${p.name} | ${p.ms.toFixed(3)} | ${pct(p.share)} |`),
    '',
    'Most self time (leaf frames):',
    '',
    '| function | where | ms / request | share |',
    '|---|---|---:|---:|',
    ...s.top.map((t) => {
      const at = t.name.lastIndexOf(' ');
      return `| \`${t.name.slice(0, at)}\` | ${t.name.slice(at + 1)} | ${t.ms.toFixed(3)} | ${pct(t.share)} |`;
    }),
    '',
    `The profile itself: \`${relative(ROOT, OUT)}\` (not committed), a flame graph in Chrome DevTools (Performance, "Load profile") or speedscope.app. The kernel's functions carry their names from \`src/ingest/core/kernel/scan.ts\` (\`scanLine\` is the walk over one record).`,
    '',
    ...provenance('npm run bench:profile -- --write'),
  ].join('\n');
  await publishSection('profile', section);
} finally {
  await server.stop();
  rmSync(dirname(server.csvDir), { recursive: true, force: true });
}
