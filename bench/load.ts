/**
 * Load generation and measurement for the HTTP benchmarks: the load shapes from
 * k6/scenarios.json, one autocannon run with every answer's latency recorded, and the CPU time of
 * server processes from /proc.
 */
import { readFileSync } from 'node:fs';
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
  /** Milliseconds per answer, in the order the answers arrived. */
  latencies: Float64Array;
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
