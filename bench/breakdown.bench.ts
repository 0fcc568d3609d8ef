/**
 * npm run bench:breakdown [-- --write]
 *
 * Where the service's time goes, by subtraction, one worker each (the load generator has the
 * other core), interleaved in one run:
 * - service: the built service as `npm run start:single` runs it (`node dist/main.js` with glibc's
 *   trim threshold, which every server here gets), default settings, one log line per request;
 * - no-transform: the same build with its NDJSON → CSV transform replaced by a stub that drops
 *   every chunk (bench/no-transform/, a module-resolution hook: the service has no such switch),
 *   so nothing is parsed and nothing written;
 * - ceiling: bench/ceiling-server.ts with one worker, a node:http server that only drains.
 * service − no-transform is what the transform and the commit of its rows cost; no-transform −
 * ceiling is what Nest, Fastify and the request handling around the body cost.
 *
 * With --write, the table replaces the breakdown section of BENCHMARKS.md.
 * ROUNDS (default 8) × REQUESTS (default 800) at CONCURRENCY (default 4), after WARMUP (default
 * 3,000) requests per server: a fresh worker needs ~2,000 requests to reach steady state.
 */
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { referenceBody } from '../test/support/taxi.js';
import { startServer } from '../test/support/server.js';
import { cpuMs, loadScenarios, runLoad, statsOf } from './load.js';
import { median, provenance } from './report.js';
import {
  NO_TRANSFORM_NODE_OPTIONS,
  SAME_MALLOC,
  startNodeCluster,
  type BenchServer,
} from './servers.js';
import { publishSection } from './write-section.js';

const ROUNDS = Number(process.env.ROUNDS ?? 8);
const REQUESTS = Number(process.env.REQUESTS ?? 800);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 4);
const WARMUP = Number(process.env.WARMUP ?? 3000);

const { body } = referenceBody();
const records = loadScenarios().expect.valid;

/** Checks every answer: the service counts every record, the two others none. */
function answers(valid: number): (text: string) => boolean {
  return (text) => {
    const stats = statsOf(text);
    return stats?.bytes === body.length && (stats.records?.valid ?? 0) === valid;
  };
}

/** One `node dist/main.js`; its temporary CSV folder is removed when it stops. */
async function single(name: string, env: Record<string, string>): Promise<BenchServer> {
  const s = await startServer({ LOG_LEVEL: 'info', ...SAME_MALLOC, ...env });
  return {
    name,
    url: s.url,
    workers: [s.proc.pid!],
    async stop() {
      await s.stop();
      rmSync(dirname(s.csvDir), { recursive: true, force: true });
    },
  };
}

const servers: { server: BenchServer; verify: (text: string) => boolean }[] = [];
try {
  servers.push({ server: await single('service', {}), verify: answers(records) });
  servers.push({
    server: await single('no-transform', { NODE_OPTIONS: NO_TRANSFORM_NODE_OPTIONS }),
    verify: answers(0),
  });
  servers.push({
    server: await startNodeCluster('ceiling', 'ceiling-server.ts', { WORKERS: '1' }),
    verify: answers(0),
  });

  const run = async (i: number, amount: number) => {
    const { server, verify } = servers[i];
    const cpu0 = cpuMs(server.workers);
    const r = await runLoad({
      url: `${server.url}/ingest`,
      body,
      connections: CONCURRENCY,
      amount,
      verifyBody: verify,
    });
    if (r.ok !== amount || r.mismatches > 0) {
      throw new Error(`${server.name}: ${r.ok} of ${amount} answered 2xx, ${r.mismatches} bad`);
    }
    return { cpu: (cpuMs(server.workers) - cpu0) / r.ok, rps: r.ok / r.seconds };
  };

  for (let i = 0; i < servers.length; i++) await run(i, WARMUP);
  const cpu: number[][] = servers.map(() => []);
  const rps: number[][] = servers.map(() => []);
  for (let round = 0; round < ROUNDS; round++) {
    const line: string[] = [];
    for (let k = 0; k < servers.length; k++) {
      const i = (round + k) % servers.length; // rotate who runs first
      const m = await run(i, REQUESTS);
      cpu[i].push(m.cpu);
      rps[i].push(m.rps);
      line.push(`${servers[i].server.name} ${m.cpu.toFixed(2)} ms/req`);
    }
    console.log(`round ${round + 1}: ${line.join(', ')}`);
  }

  const med = cpu.map(median);
  const range = (xs: number[]) => `${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}`;
  const [service, noTransform, ceiling] = med;
  const section = [
    `One worker each, the load generator (autocannon, keep-alive) on the other core; ${ROUNDS} interleaved rounds × ${REQUESTS.toLocaleString('en-US')} requests of the reference body (${body.length.toLocaleString('en-US')} bytes) at concurrency ${CONCURRENCY}, after ${WARMUP.toLocaleString('en-US')} warm-up requests per server. CPU: user + system time of the worker (\`/proc/<pid>/stat\`) per request. Every server runs with \`MALLOC_TRIM_THRESHOLD_=33554432\`, as \`npm start\` and \`npm run start:single\` run the service.`,
    '',
    '| server | what it does | CPU ms/request, median | range | req/s, median |',
    '|---|---|---:|---|---:|',
    `| service | \`node dist/main.js\` | ${service.toFixed(3)} | ${range(cpu[0])} | ${median(rps[0]).toFixed(0)} |`,
    `| no-transform | the same build, transform replaced by a stub (\`bench/no-transform/\`): body read and dropped, nothing written | ${noTransform.toFixed(3)} | ${range(cpu[1])} | ${median(rps[1]).toFixed(0)} |`,
    `| ceiling | \`bench/ceiling-server.ts\`, one worker: node:http, drains the body | ${ceiling.toFixed(3)} | ${range(cpu[2])} | ${median(rps[2]).toFixed(0)} |`,
    '',
    `- transform + commit of the rows (service − no-transform): **${(service - noTransform).toFixed(3)} ms** per request, ${((100 * (service - noTransform)) / service).toFixed(0)} % of the service's CPU`,
    `- Nest, Fastify and the request handling around the body (no-transform − ceiling): **${(noTransform - ceiling).toFixed(3)} ms** per request`,
    '',
    ...provenance('npm run bench:breakdown -- --write'),
  ].join('\n');
  await publishSection('breakdown', section);
} finally {
  for (const { server } of servers) await server.stop();
}
