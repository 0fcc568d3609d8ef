/**
 * Load generation and measurement for the HTTP benchmarks: the load shapes from
 * k6/scenarios.json, one autocannon run with every answer's latency recorded, one wrk run (a
 * load generator in C, much lighter on CPU than autocannon), and the CPU time of server processes
 * from /proc.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import autocannon from 'autocannon';
import { procStat } from '../test/support/server.js';

export interface LoadShape {
  name: string;
  concurrency: number;
  requests: number;
}

interface Scenarios {
  path: string;
  bodies: Record<string, { expect: { valid: number; invalid: number } }>;
  scenarios: (LoadShape & { body: string })[];
}

/** The route and the reference shapes (concurrency 1, 2, 4, 8 × 2,048 requests), defined once. */
export function loadScenarios(): {
  path: string;
  shapes: LoadShape[];
  expect: { valid: number; invalid: number };
} {
  const s = JSON.parse(
    readFileSync(new URL('../k6/scenarios.json', import.meta.url), 'utf8'),
  ) as Scenarios;
  const shapes = s.scenarios
    .filter((x) => x.body === 'reference')
    .map(({ name, concurrency, requests }) => ({ name, concurrency, requests }));
  return { path: s.path, shapes, expect: s.bodies.reference.expect };
}

/** The `stats` of a 200 answer (`{"result":{"status":"ok","stats":…}}`), or undefined. */
export interface AnswerStats {
  bytes?: number;
  records?: { valid: number; invalid: number; total: number };
}

export function statsOf(text: string): AnswerStats | undefined {
  try {
    const answer = JSON.parse(text) as { result?: { status?: string; stats?: AnswerStats } };
    return answer.result?.status === 'ok' ? answer.result.stats : undefined;
  } catch {
    return undefined;
  }
}

export interface LoadRun {
  requests: number;
  /** 2xx answers. */
  ok: number;
  non2xx: number;
  /** Connection errors and timeouts. */
  errors: number;
  /** Answers whose body failed `verifyBody` (2xx or not). */
  mismatches: number;
  statuses: Record<number, number>;
  /** From the first request written to the last answer read. */
  seconds: number;
  /** Milliseconds per answer, in the order the answers arrived (autocannon only). */
  latencies: Float64Array;
  /** Percentiles from the client itself, in milliseconds (wrk: it keeps no per-answer list). */
  percentiles?: { p50: number; p99: number };
  /** The first few bodies that failed `verifyBody`, for the report. */
  badBodies: string[];
}

export interface LoadOptions {
  url: string;
  body: Buffer;
  connections: number;
  amount: number;
  verifyBody: (body: string) => boolean;
}

/**
 * Keep-alive connections, pipelining 1, `amount` requests shared among `connections` clients
 * (autocannon's programmatic API). autocannon's own duration only notices the end at its next
 * sample tick, so the elapsed time is taken here, up to the last answer.
 */
export async function runLoad(o: LoadOptions): Promise<LoadRun> {
  const latencies = new Float64Array(o.amount);
  let answered = 0;
  let ok = 0;
  let lastAnswer = 0n;
  const statuses: Record<number, number> = {};
  const badBodies: string[] = [];
  const start = process.hrtime.bigint();
  const instance = autocannon({
    url: o.url,
    method: 'POST',
    body: o.body,
    headers: { 'content-type': 'application/x-ndjson' },
    connections: o.connections,
    amount: o.amount,
    pipelining: 1,
    timeout: 30,
    sampleInt: 50,
    verifyBody: (text) => {
      if (o.verifyBody(text)) return true;
      if (badBodies.length < 5) badBodies.push(text.slice(0, 500));
      return false;
    },
  });
  instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
    lastAnswer = process.hrtime.bigint();
    if (answered < latencies.length) latencies[answered] = ms;
    answered++;
    statuses[status] = (statuses[status] ?? 0) + 1;
    if (status >= 200 && status < 300) ok++;
  });
  const result = await instance;
  return {
    requests: answered,
    ok,
    non2xx: answered - ok,
    errors: result.errors,
    mismatches: result.mismatches,
    statuses,
    seconds: Number((lastAnswer > 0n ? lastAnswer : process.hrtime.bigint()) - start) / 1e9,
    latencies: latencies.subarray(0, Math.min(answered, latencies.length)),
    badBodies,
  };
}

/** Where wrk is, or undefined when it is not installed (`apt-get install wrk`). */
export function wrkPath(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const path = join(dir || '.', 'wrk');
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not there
    }
  }
  return undefined;
}

export interface WrkOptions {
  url: string;
  /** A file holding the body (wrk reads it). */
  bodyFile: string;
  connections: number;
  seconds: number;
  /** A piece of text every 2xx answer must contain (the stats it must report). */
  expect: string;
  /** wrk threads (default 1: one thread keeps 8 connections busy at 16,000 req/s here). */
  threads?: number;
}

const WRK_SCRIPT = fileURLToPath(new URL('wrk/post.lua', import.meta.url));

/**
 * One wrk run (bench/wrk/post.lua): keep-alive connections, one request at a time on each, for
 * `seconds`. wrk runs for a time, not a number of requests, and abandons the requests in flight
 * when it ends: a server may have done (and the service committed) up to `connections` requests
 * more than the answers counted.
 */
export async function runWrk(o: WrkOptions): Promise<LoadRun> {
  const threads = Math.min(o.threads ?? 1, o.connections);
  const { stdout } = await promisify(execFile)(
    'wrk',
    [
      `-t${threads}`,
      `-c${o.connections}`,
      `-d${o.seconds}s`,
      '--timeout',
      '30s',
      '-s',
      WRK_SCRIPT,
      o.url,
    ],
    { env: { ...process.env, WRK_BODY: o.bodyFile, WRK_EXPECT: o.expect } },
  );
  const line = /^WRK_RESULT (.*)$/m.exec(stdout)?.[1];
  if (line === undefined) throw new Error(`wrk printed no result:\n${stdout}`);
  const r = JSON.parse(line) as {
    answers: number;
    ok: number;
    non2xx: number;
    bad: number;
    statuses: string;
    errors: number;
    durationUs: number;
    p50Us: number;
    p99Us: number;
  };
  const statuses: Record<number, number> = {};
  if (r.ok > 0) statuses[200] = r.ok;
  // "status:count" per non-2xx status and wrk thread.
  for (const pair of r.statuses.trim().split(' ').filter(Boolean)) {
    const [s, n] = pair.split(':').map(Number);
    statuses[s] = (statuses[s] ?? 0) + n;
  }
  return {
    requests: r.answers,
    ok: r.ok,
    non2xx: r.non2xx,
    errors: r.errors,
    mismatches: r.bad,
    statuses,
    seconds: r.durationUs / 1e6,
    latencies: new Float64Array(0),
    percentiles: { p50: r.p50Us / 1000, p99: r.p99Us / 1000 },
    badBodies: [],
  };
}

/** User + system CPU time of these processes so far, in milliseconds. */
export function cpuMs(pids: readonly number[]): number {
  let ms = 0;
  for (const pid of pids) {
    const p = procStat(pid);
    ms += p.userMs + p.systemMs;
  }
  return ms;
}

/** Peak and current resident set size of a process, in bytes (/proc/<pid>/status). */
export function memoryOf(pid: number): { peakRss: number; rss: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]);
  return { peakRss: kib('VmHWM') * 1024, rss: kib('VmRSS') * 1024 };
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
