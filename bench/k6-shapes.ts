/**
 * npm run bench:k6 [-- --write]   (LOAD_SECONDS, default 20)
 *
 * The shapes of the k6 scripts, run from Node against the service as `npm start` runs it (k6
 * cannot be installed where this project is built): smoke.js, load.js, spike.js and
 * bad-input.js, with the same bodies, rates and checks, reading k6/scenarios.json and
 * k6/lib/bad-inputs.js. Prints one k6-like summary per script; with --write, replaces the example
 * output in k6/README.md. Ramps are run as steps.
 */
import { readFileSync, rmSync } from 'node:fs';
import { Agent } from 'node:http';
import { dirname } from 'node:path';
import { gzipSync } from 'node:zlib';
import { answersAsExpected, badInputs } from '../k6/lib/bad-inputs.js';
import { taxiBody } from '../test/support/taxi.js';
import { replayBadInput } from '../test/support/bad-input-replay.js';
import { closedLoop, openLoop, post, type Answer } from './open-loop.js';
import { machine, percentile } from './report.js';
import { startService } from './servers.js';
import { writeSection } from './write-section.js';

interface Scenarios {
  path: string;
  bodies: { reference: { generatedRecords: number; generatedSeed: number } };
  load: { rate: number };
  spike: { rate: number; factor: number; before: string; hold: string; after: string };
}
const config = JSON.parse(
  readFileSync(new URL('../k6/scenarios.json', import.meta.url), 'utf8'),
) as Scenarios;
const LOAD_SECONDS = Number(process.env.LOAD_SECONDS ?? 20);
const seconds = (d: string) => Number(/^(\d+)s$/.exec(d)![1]);
const reference = Buffer.from(
  taxiBody(config.bodies.reference.generatedRecords, config.bodies.reference.generatedSeed),
);

function summary(name: string, answers: Answer[], checks: boolean[], extra: string[] = []): string {
  const ms = answers.map((a) => a.end - a.start);
  const failed = answers.filter((a) => a.error !== undefined || a.status >= 400).length;
  const passed = checks.filter(Boolean).length;
  return [
    `${name}`,
    `  checks.........................: ${((passed / Math.max(1, checks.length)) * 100).toFixed(2)}% ✓ ${passed} ✗ ${checks.length - passed}`,
    `  http_req_duration..............: med=${percentile(ms, 50).toFixed(2)}ms p(99)=${percentile(ms, 99).toFixed(2)}ms max=${Math.max(...ms).toFixed(2)}ms`,
    `  http_req_failed................: ${((failed / Math.max(1, answers.length)) * 100).toFixed(2)}% ✓ ${failed} ✗ ${answers.length - failed}`,
    `  http_reqs......................: ${answers.length}`,
    ...extra.map((e) => `  ${e}`),
  ].join('\n');
}

async function smoke(base: string): Promise<string> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const kinds = [
    { body: reference, valid: config.bodies.reference.generatedRecords, gzip: false },
    { body: Buffer.from(taxiBody(1, 7)), valid: 1, gzip: false },
    { body: gzipSync(taxiBody(100, 8)), valid: 100, gzip: true },
  ];
  const answers: Answer[] = [];
  const checks: boolean[] = [];
  for (let i = 0; i < 5; i++) {
    const k = kinds[i % kinds.length];
    const a = await post(
      base + config.path,
      k.body,
      agent,
      k.gzip ? { 'content-encoding': 'gzip' } : {},
    );
    answers.push(a);
    checks.push(a.status === 200);
  }
  agent.destroy();
  return summary('smoke.js (1 VU, 5 iterations)', answers, checks);
}

async function load(base: string): Promise<string> {
  const { answers, launched } = await openLoop(
    base + config.path,
    reference,
    config.load.rate,
    LOAD_SECONDS * 1000,
  );
  return summary(
    `load.js (constant-arrival-rate ${config.load.rate}/s for ${LOAD_SECONDS} s)`,
    answers,
    answers.map((a) => a.status === 200),
    [`iterations.....................: ${launched}`, 'dropped_iterations.............: 0'],
  );
}

async function spike(base: string): Promise<string> {
  const s = config.spike;
  const url = base + config.path;
  const all: Answer[] = [];
  for (const [rate, d] of [
    [s.rate, s.before],
    [s.rate * s.factor, s.hold],
    [s.rate, s.after],
  ] as [number, string][]) {
    all.push(...(await openLoop(url, reference, rate, seconds(d) * 1000)).answers);
  }
  const ok = (a: Answer) => a.status === 200 || (a.status === 503 && a.retryAfter);
  return summary(
    `spike.js (${s.rate}/s, ${s.rate * s.factor}/s for ${s.hold}, ${s.rate}/s; ramps as steps)`,
    all,
    all.map(ok),
    [`503 with Retry-After...........: ${all.filter((a) => a.status === 503).length}`],
  );
}

async function badInput(base: string): Promise<string> {
  const lines: string[] = [];
  const checks: boolean[] = [];
  for (const c of badInputs({ DATASET: 'nyc_taxi' })) {
    const answer = await replayBadInput(base, c);
    const pass = answersAsExpected(c, answer.status, answer.json);
    checks.push(pass);
    lines.push(
      `  ${pass ? '✓' : '✗'} ${c.code ?? 'control 200'} (${c.method} ${c.path}): status ${c.status} and JSON shape`,
    );
  }
  const passed = checks.filter(Boolean).length;
  return [
    'bad-input.js (1 VU, 1 iteration; with DATASET=nyc_taxi)',
    ...lines,
    `  checks.........................: ${((passed / checks.length) * 100).toFixed(2)}% ✓ ${passed} ✗ ${checks.length - passed}`,
  ].join('\n');
}

async function main(): Promise<void> {
  const service = await startService();
  let text: string;
  try {
    await closedLoop(service.url + config.path, reference, 8, 3000); // warm-up
    text = [
      await smoke(service.url),
      await load(service.url),
      await spike(service.url),
      await badInput(service.url),
    ].join('\n\n');
  } finally {
    await service.stop();
    rmSync(dirname(service.cluster.csvDir), { recursive: true, force: true });
  }
  const section = [
    'From `npm run bench:k6` (the same shapes from Node; k6 itself is not installed where this',
    `project is built), against \`npm start\` on ${machine()}, ${new Date().toISOString().slice(0, 10)}:`,
    '',
    '```',
    text,
    '```',
  ].join('\n');
  console.log(section);
  if (process.argv.includes('--write')) {
    await writeSection(new URL('../k6/README.md', import.meta.url), 'examples', section);
    console.log('\nwrote the example output of k6/README.md');
  }
}

await main();
