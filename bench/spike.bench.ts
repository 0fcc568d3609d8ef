/**
 * npm run bench:spike [-- --write]   (SPIKE_SECONDS, default 20; SPIKE_FACTOR, default 3)
 *
 * Load shedding under a spike (issue 17). The service under pm2 (SPIKE_INSTANCES workers, default 1),
 * twice: with its load shedding (the defaults) and without (`SHED_EVENT_LOOP_DELAY_MS=0`), one
 * after the other, never at once. For each:
 *
 * 1. capacity: the reference body, closed loop at concurrency 8 for 5 s (req/s of 200s);
 * 2. spike: an open loop (arrivals at a fixed rate, whatever the answers) at SPIKE_FACTOR ×
 *    capacity for SPIKE_SECONDS, new requests on keep-alive connections as needed;
 * 3. recovery: closed loop at concurrency 8 again for 5 s, counted per second from the spike's end.
 *
 * Checks, with shedding: every answer is a 200, or a 503 with Retry-After; no timeouts and no
 * connection errors; the 200s' p99 stays under SPIKE_P99_MS (default 250 ms); the second after the
 * spike's first second runs at ≥ 90 % of capacity ("full throughput back within 2 s").
 * The client runs on the same 2 cores as the service, so the arrival rate it reaches is reported
 * next to the one asked for. With --write the result replaces the spike section of BENCHMARKS.md.
 */
import { referenceBody } from '../test/support/taxi.js';
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
/** Shedding settings to try, passed on from this process's environment. */
const TUNING = Object.fromEntries(
  ['SHED_EVENT_LOOP_DELAY_MS', 'SHED_EVENT_LOOP_UTILIZATION', 'SHED_SAMPLE_MS', 'MAX_IN_FLIGHT']
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
}

async function spike(name: string, server: BenchServer): Promise<SpikeResult> {
  const url = `${server.url}/ingest`;
  await closedLoop(url, body, 8, 3000); // warm-up
  const cap = await closedLoop(url, body, 8, 5000);
  const capOk = cap.filter((a) => a.status === 200);
  const capacity = capOk.length / 5;
  const asked = capacity * FACTOR;
  console.log(
    `${name}: capacity ${capacity.toFixed(0)} req/s; spike at ${asked.toFixed(0)} req/s for ${SECONDS} s`,
  );
  const { answers, launched } = await openLoop(url, body, asked, SECONDS * 1000);
  const spikeEnd = performance.now();
  const recoveryAnswers = await closedLoop(url, body, 8, 5000);
  const recovery = [0, 1, 2, 3, 4].map(
    (s) =>
      recoveryAnswers.filter(
        (a) =>
          a.status === 200 && a.end - spikeEnd >= s * 1000 && a.end - spikeEnd < (s + 1) * 1000,
      ).length,
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
  };
}

async function main(): Promise<void> {
  const results: SpikeResult[] = [];
  for (const [name, env] of [
    ['shedding (defaults, or the SHED_* and MAX_IN_FLIGHT given)', TUNING],
    ['no shedding (SHED_EVENT_LOOP_DELAY_MS=0)', { SHED_EVENT_LOOP_DELAY_MS: '0' }],
  ] as [string, Record<string, string>][]) {
    const server = await startService({ INSTANCES, ...env });
    try {
      results.push(await spike(name, server));
    } finally {
      await server.stop();
    }
  }
  const fmt = (x: number, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '–');
  const rows = results.map(
    (r) =>
      `| ${r.name} | ${fmt(r.capacity)} | ${fmt(r.asked)} / ${fmt(r.reached)} | ${r.answers} | ${r.ok} | ${r.shed} | ${
        Object.entries(r.errors)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ') || '0'
      } | ${fmt(r.p50ok, 1)} | ${fmt(r.p99ok, 1)} | ${r.recovery.map((n) => fmt((n / r.capacity) * 100)).join(' / ')} |`,
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
      'full throughput back within 2 s (second 1–2 after the spike ≥ 90 % of capacity)',
      s.recovery[1] >= 0.9 * s.capacity,
      `${fmt((s.recovery[1] / s.capacity) * 100)} %`,
    ],
  ] as [string, boolean, string][];
  const section = [
    `Body: ${source}, ${body.length.toLocaleString('en-US')} bytes, \`POST /ingest\`. The service under pm2 with \`INSTANCES=${INSTANCES}\` (the client needs a core of its own to offer ${FACTOR}× what the service takes), ` +
      `capacity measured closed-loop at c8 for 5 s, then arrivals at ${FACTOR}× capacity for ${SECONDS} s (open loop, ` +
      `from a client on the same cores, so it may not reach the rate asked), then closed-loop c8 for 5 s.`,
    '',
    '| service | capacity req/s | arrivals asked / reached per s | answers | 200 | 503 | errors | 200s p50 ms | 200s p99 ms | throughput after, s 0–1 / 1–2 / … % of capacity |',
    '|---|---:|---:|---:|---:|---:|---|---:|---:|---|',
    ...rows,
    '',
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
