/**
 * npm run bench:spike [-- --write]   (SPIKE_SECONDS, default 20; SPIKE_FACTOR, default 3)
 *
 * Load shedding under a spike (issue 17). The service under pm2 (SPIKE_INSTANCES workers, default 1),
 * twice: with its load shedding (the defaults) and without (`SHED_EVENT_LOOP_DELAY_MS=0`,
 * `SHED_EVENT_LOOP_TURN_MS=0`), one after the other, never at once. For each:
 *
 * 1. capacity: the reference body, closed loop at concurrency 8 for 5 s (req/s of 200s);
 * 2. spike: an open loop (arrivals at a fixed rate, whatever the answers) at SPIKE_FACTOR ×
 *    capacity for SPIKE_SECONDS, on a pool of SPIKE_CONNECTIONS keep-alive connections opened before;
 * 3. recovery: closed loop at concurrency 8 again for 5 s, counted per second from the spike's end.
 *
 * Checks, with shedding: every answer is a 200, or a 503 with Retry-After; no timeouts and no
 * connection errors; the 200s' p99 stays under SPIKE_P99_MS (default 250 ms), and does not grow (the
 * p99 of the last quarter's arrivals is no higher than the first quarter's); the second after the
 * spike's first second runs at ≥ 90 % of capacity ("full throughput back within 2 s").
 * Where taskset runs, the service is on core 0 (capped, SPIKE_SERVER_CORES) and the client on
 * core 1; the arrival rate the client reaches is reported next to the one asked for. With --write
 * the result replaces the spike section of BENCHMARKS.md.
 */
import { readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { dirname, join } from 'node:path';
import { referenceBody } from '../test/support/taxi.js';
import { canSplit, capCpu, pin, type CpuCap } from './cpu-isolation.js';
import { closedLoop, openLoop } from './open-loop.js';
import { machine, percentile } from './report.js';
import { startService, type BenchServer } from './servers.js';
import { publishSection } from './write-section.js';

const SECONDS = Number(process.env.SPIKE_SECONDS ?? 20);
const FACTOR = Number(process.env.SPIKE_FACTOR ?? 3);
const P99_MS = Number(process.env.SPIKE_P99_MS ?? 250);
/**
 * One worker by default: the client then has a core of its own and can offer ~3× what one worker
 * takes; with a worker per core it competes with them and cannot (its own queue would be measured).
 */
const INSTANCES = process.env.SPIKE_INSTANCES ?? '1';
/**
 * The service's processes run on core 0 and this client on core 1, and the service is capped at
 * this much of its core (0: no cap), so that the client can offer FACTOR × what it takes: with
 * both on the same cores the client's own send queue, not the service, would be measured.
 */
const SERVER_CORES = Number(process.env.SPIKE_SERVER_CORES ?? 0.5);
const SPLIT = canSplit();
/** SPIKE_COMPARE=0 skips the run without shedding (for tuning runs; the published one has both). */
const COMPARE = process.env.SPIKE_COMPARE !== '0';
/**
 * The client's pool of keep-alive connections, opened before the spike (k6's pre-allocated VUs,
 * an SDK's pool). Arrivals that find every connection busy wait in the client, and that wait
 * counts in their latency. New connections in a burst would instead queue in the cluster
 * primary's hand-off, one per worker per event-loop turn, where no worker can see, let alone
 * refuse, them (docs/OPERATIONS.md, "Overload").
 */
const CONNECTIONS = Number(process.env.SPIKE_CONNECTIONS ?? 512);
/** Shedding settings to try, passed on from this process's environment. */
const TUNING = Object.fromEntries(
  [
    'SHED_EVENT_LOOP_DELAY_MS',
    'SHED_EVENT_LOOP_UTILIZATION',
    'SHED_SAMPLE_MS',
    'SHED_EVENT_LOOP_TURN_MS',
    'MAX_IN_FLIGHT',
  ]
    .filter((k) => process.env[k] !== undefined)
    .map((k) => [k, process.env[k]!]),
);
const { body, source } = referenceBody();

interface SpikeResult {
  name: string;
  capacity: number;
  asked: number;
  reached: number;
  answers: number;
  ok: number;
  shed: number;
  shedWithoutRetryAfter: number;
  otherStatus: Record<number, number>;
  errors: Record<string, number>;
  p50ok: number;
  p99ok: number;
  recovery: number[];
  opened: number;
  /** The 200s' p99 per second of arrival (ms). */
  p99BySecond: number[];
  /** The 200s' p99 for the arrivals of the spike's first and last quarter (ms). */
  p99Quarters: [number, number];
  /** Health checks on new connections during the spike (ms). */
  healthChecks: { count: number; p50: number; max: number };
}

async function spike(name: string, server: BenchServer): Promise<SpikeResult> {
  const url = `${server.url}/ingest`;
  await closedLoop(url, body, 8, 10000); // warm-up: the JIT, under the CPU cap, takes seconds
  const capCpu0 = processCpuMs(server.workers);
  const cap = await closedLoop(url, body, 8, 5000);
  const capCpu = processCpuMs(server.workers) - capCpu0;
  const capOk = cap.filter((a) => a.status === 200);
  const capacity = capOk.length / 5;
  const asked = capacity * FACTOR;
  console.log(
    `${name}: capacity ${capacity.toFixed(0)} req/s; spike at ${asked.toFixed(0)} req/s for ${SECONDS} s`,
  );
  const cpu0 = process.cpuUsage();
  const serverCpu0 = processCpuMs(server.workers);
  // A load balancer's health check opens a new connection each time: one every 500 ms.
  const probes = probeHealth(new URL('/health/live', url).href, SECONDS * 1000);
  const { answers, launched, opened } = await openLoop(
    url,
    body,
    asked,
    SECONDS * 1000,
    CONNECTIONS,
  );
  const probeTimes = await probes;
  console.log(
    `  health checks on new connections during the spike: ${probeTimes.length}, p50 ${fmtMs(percentile(probeTimes, 50))} ms, max ${fmtMs(Math.max(...probeTimes))} ms`,
  );
  const cpu = process.cpuUsage(cpu0);
  console.log(`  connections the client opened during the spike: ${opened}`);
  const serverCpu = processCpuMs(server.workers) - serverCpu0;
  console.log(
    `  service CPU during the spike and its drain: ${(serverCpu / (SECONDS * 1000)).toFixed(2)} of a core per second of spike (cap ${SERVER_CORES || 'none'}), ${((serverCpu * 1000) / launched).toFixed(0)} µs per arrival`,
  );
  console.log(
    `  client CPU during the spike: ${((cpu.user + cpu.system) / 1e3 / (SECONDS * 1000)).toFixed(2)} of a core (${(cpu.system / 1e3 / (SECONDS * 1000)).toFixed(2)} system)`,
  );
  const spikeEnd = performance.now();
  const recoveryCpu0 = processCpuMs(server.workers);
  const recoveryAnswers = await closedLoop(url, body, 8, 5000);
  const recoveryCpu = processCpuMs(server.workers) - recoveryCpu0;
  // Whether the worker is slower after the spike (more CPU per request) or gets less CPU.
  console.log(
    `  service CPU per request, closed loop c8: ${(capCpu / cap.length).toFixed(2)} ms before the spike, ${(recoveryCpu / recoveryAnswers.length).toFixed(2)} ms in the 5 s after it`,
  );
  // Answers of the closed loop after the spike, counted per second from its end.
  const perSecondAfter = (pick: (status: number) => boolean) =>
    [0, 1, 2, 3, 4].map(
      (s) =>
        recoveryAnswers.filter(
          (a) =>
            pick(a.status) && a.end - spikeEnd >= s * 1000 && a.end - spikeEnd < (s + 1) * 1000,
        ).length,
    );
  const recovery = perSecondAfter((status) => status === 200);
  const refusedAfter = perSecondAfter((status) => status !== 200);
  console.log(
    `  after the spike, closed loop c8: 200s per second ${recovery.join(' / ')}, other answers ${refusedAfter.join(' / ')}`,
  );
  const ok = answers.filter((a) => a.status === 200);
  const shedAnswers = answers.filter((a) => a.status === 503);
  const otherStatus: Record<number, number> = {};
  const errors: Record<string, number> = {};
  for (const a of answers) {
    if (a.error !== undefined) errors[a.error] = (errors[a.error] ?? 0) + 1;
    else if (a.status !== 200 && a.status !== 503)
      otherStatus[a.status] = (otherStatus[a.status] ?? 0) + 1;
  }
  const latencies = ok.map((a) => a.end - a.start);
  // Per second of arrival: where in the spike the slow answers were asked for.
  const t0 = Math.min(...answers.map((a) => a.start));
  const quarter = (SECONDS * 1000) / 4;
  const okIn = (from: number, to: number) =>
    ok.filter((a) => a.start - t0 >= from && a.start - t0 < to).map((a) => a.end - a.start);
  const p99Quarters: [number, number] = [
    percentile(okIn(0, quarter), 99),
    percentile(okIn(3 * quarter, Infinity), 99),
  ];
  const p99BySecond: number[] = [];
  for (let sec = 0; sec < SECONDS; sec++) {
    const inSec = answers.filter(
      (a) => a.start - t0 >= sec * 1000 && a.start - t0 < (sec + 1) * 1000,
    );
    const l = inSec.filter((a) => a.status === 200).map((a) => a.end - a.start);
    const waited = inSec.filter((a) => a.waited);
    p99BySecond.push(percentile(l, 99));
    console.log(
      `  s${sec}: ${inSec.length} asked, ${l.length} ok (p50 ${(percentile(l, 50) ?? NaN).toFixed(0)} p99 ${(percentile(l, 99) ?? NaN).toFixed(0)} ms), ${inSec.filter((a) => a.status === 503).length} shed, ${inSec.filter((a) => a.error !== undefined).length} errors; ${waited.length} waited for a connection`,
    );
  }
  return {
    name,
    capacity,
    asked,
    reached: launched / SECONDS,
    answers: answers.length,
    ok: ok.length,
    shed: shedAnswers.length,
    shedWithoutRetryAfter: shedAnswers.filter((a) => !a.retryAfter).length,
    otherStatus,
    errors,
    p50ok: percentile(latencies, 50),
    p99ok: percentile(latencies, 99),
    recovery,
    opened,
    p99BySecond,
    p99Quarters,
    healthChecks: {
      count: probeTimes.length,
      p50: percentile(probeTimes, 50),
      max: Math.max(...probeTimes),
    },
  };
}

/** GET `url` on a new connection every 500 ms for `ms`; each one's time to its answer (ms). */
async function probeHealth(url: string, ms: number): Promise<number[]> {
  const times: Promise<number>[] = [];
  const until = performance.now() + ms;
  while (performance.now() < until) {
    const start = performance.now();
    times.push(
      new Promise((resolve) => {
        const req = request(url, { agent: false }, (res) =>
          res.resume().on('end', () => resolve(performance.now() - start)),
        );
        req.on('error', () => resolve(Infinity));
        req.end();
      }),
    );
    await sleep(500);
  }
  return Promise.all(times);
}

const fmtMs = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '–');

/** CPU time (user + system) the processes have used, in ms, from /proc (Linux; 0 elsewhere). */
function processCpuMs(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      return 0;
    }
  }
  return ticks * 10; // USER_HZ is 100 on Linux
}

let isolation = 'service and client share the cores (no taskset or not Linux)';

async function main(): Promise<void> {
  if (SPLIT) {
    pin([process.pid], '1');
    isolation = 'service on core 0, the client on core 1';
  }
  const results: SpikeResult[] = [];
  const runs: [string, Record<string, string>][] = [
    ['shedding (defaults, or the SHED_* and MAX_IN_FLIGHT given)', TUNING],
  ];
  if (COMPARE)
    runs.push([
      'no shedding (SHED_EVENT_LOOP_DELAY_MS=0, SHED_EVENT_LOOP_TURN_MS=0)',
      { SHED_EVENT_LOOP_DELAY_MS: '0', SHED_EVENT_LOOP_TURN_MS: '0' },
    ]);
  for (const [name, env] of runs) {
    const server = await startService({ INSTANCES, ...env });
    let cap: CpuCap | undefined;
    try {
      if (SPLIT) {
        const daemon = Number(readFileSync(join(server.cluster.home, 'pm2.pid'), 'utf8'));
        const pids = [daemon, ...server.workers];
        pin(pids, '0');
        if (SERVER_CORES > 0) {
          const capped = capCpu(pids, SERVER_CORES);
          if ('unavailable' in capped)
            isolation = `service on core 0, not capped (${capped.unavailable})`;
          else {
            cap = capped;
            isolation = `service on core 0, ${capped.description}; the client on core 1`;
          }
        }
      }
      results.push(await spike(name, server));
    } finally {
      cap?.release();
      await server.stop();
      // Gigabytes of rows per run: a few runs fill a disk.
      rmSync(dirname(server.cluster.csvDir), { recursive: true, force: true });
    }
  }
  const fmt = (x: number, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '–');
  const rows = results.map(
    (r) =>
      `| ${r.name} | ${fmt(r.capacity)} | ${fmt(r.asked)} / ${fmt(r.reached)} | ${r.answers} | ${r.ok} | ${r.shed} | ${
        Object.entries(r.errors)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ') || '0'
      } | ${r.opened} | ${fmt(r.p50ok, 1)} | ${fmt(r.p99ok, 1)} | ${r.recovery.map((n) => fmt((n / r.capacity) * 100)).join(' / ')} |`,
  );
  const s = results[0];
  const checks = [
    [
      'every answer a 200, or a 503 with Retry-After',
      Object.keys(s.otherStatus).length === 0 && s.shedWithoutRetryAfter === 0,
      `others ${JSON.stringify(s.otherStatus)}, 503 without Retry-After ${s.shedWithoutRetryAfter}`,
    ],
    [
      'no timeouts, no connection errors',
      Object.keys(s.errors).length === 0,
      JSON.stringify(s.errors),
    ],
    [`the 200s' p99 ≤ ${P99_MS} ms`, s.p99ok <= P99_MS, `${fmt(s.p99ok, 1)} ms`],
    [
      "the 200s' p99 does not grow over the spike (last quarter's arrivals ≤ first quarter's)",
      s.p99Quarters[1] <= s.p99Quarters[0],
      `${fmt(s.p99Quarters[0])} ms, then ${fmt(s.p99Quarters[1])} ms`,
    ],
    [
      'full throughput back within 2 s (second 1–2 after the spike ≥ 90 % of capacity)',
      s.recovery[1] >= 0.9 * s.capacity,
      `${fmt((s.recovery[1] / s.capacity) * 100)} %`,
    ],
  ] as [string, boolean, string][];
  const section = [
    `Body: ${source}, ${body.length.toLocaleString('en-US')} bytes, \`POST /ingest\`. The service under pm2 with \`INSTANCES=${INSTANCES}\` (the client needs a core of its own to offer ${FACTOR}× what the service takes), ` +
      `${isolation}; capacity measured closed-loop at c8 for 5 s, then arrivals at ${FACTOR}× capacity for ${SECONDS} s (open loop, ` +
      `on ${CONNECTIONS} keep-alive connections opened before; the rate reached is reported beside the rate asked), then closed-loop c8 for 5 s.`,
    '',
    '| service | capacity req/s | arrivals asked / reached per s | answers | 200 | 503 | errors | connections opened during it | 200s p50 ms | 200s p99 ms | throughput after, s 0–1 / 1–2 / … % of capacity |',
    '|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|',
    ...rows,
    '',
    ...results.flatMap((r) => [
      `${r.name}: the 200s' p99 by second of arrival, ms: ${r.p99BySecond.map((x) => fmt(x)).join(', ')}. ` +
        `Health checks on a new connection every 500 ms during the spike (as a balancer's): ${r.healthChecks.count}, p50 ${fmt(r.healthChecks.p50)} ms, max ${fmt(r.healthChecks.max)} ms.`,
      '',
    ]),
    'Checks (with shedding):',
    '',
    '```',
    ...checks.map(([what, ok, detail]) => `${ok ? 'PASS' : 'FAIL'}  ${what}: ${detail}`),
    '```',
    '',
    `Machine: ${machine()}. Command: \`npm run bench:spike\`. Date: ${new Date().toISOString().slice(0, 10)}.`,
  ].join('\n');
  await publishSection('spike', section);
  if (checks.some(([, ok]) => !ok)) process.exitCode = 1;
}

await main();
