/**
 * Starts the real, built service (`node dist/main.js`) as a child process on 127.0.0.1, and a
 * small HTTP client for the tests. `npm test` builds dist/ first.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { request, Agent, type IncomingHttpHeaders } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const MAIN = join(ROOT, 'dist', 'main.js');

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface RunningServer {
  url: string;
  port: number;
  csvDir: string;
  proc: ChildProcess;
  output: () => string;
  /** Sends a signal and waits for the exit: 0, or the signal itself after a graceful close. */
  stop(signal?: NodeJS.Signals): Promise<number | string | null>;
}

/**
 * A new temporary folder: under the test run's own folder when jest runs (removed by its global
 * teardown, test/support/temp-root.mjs), else in the system's temp folder.
 */
export function tempDir(prefix = 'ndjson-ingest-'): string {
  return mkdtempSync(join(process.env.NDJSON_INGEST_TEST_TMP ?? tmpdir(), prefix));
}

export async function startServer(
  env: Record<string, string> = {},
  /** Options for node itself, before the script (V8 flags, which NODE_OPTIONS mostly refuses). */
  nodeArgs: readonly string[] = [],
): Promise<RunningServer> {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run npm run build (npm test does)`);
  const port = await freePort();
  const csvDir = env.CSV_DIR ?? join(tempDir(), 'csv');
  const proc = spawn(process.execPath, [...nodeArgs, MAIN], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      TZ: process.env.TZ,
      HOST: '127.0.0.1',
      PORT: String(port),
      CSV_DIR: csvDir,
      LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | string | null>((resolve) =>
    proc.once('exit', (code, signal) => resolve(code ?? signal)),
  );
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${out}`)), 20000);
    proc.on('message', (m) => {
      if (m === 'ready') {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${out}`));
    });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    csvDir,
    proc,
    output: () => out,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}

const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU time (milliseconds) and minor page faults of a process so far (/proc/<pid>/stat). */
export function procStat(pid: number): { userMs: number; systemMs: number; minorFaults: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after "(comm)": state is field 3, minflt 10, utime 14, stime 15 (proc(5)).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return {
    userMs: (Number(fields[11]) * 1000) / CLOCK_TICKS,
    systemMs: (Number(fields[12]) * 1000) / CLOCK_TICKS,
    minorFaults: Number(fields[7]),
  };
}

/**
 * The series of one metric on a service's /metrics, summed by the value of one label (series
 * without it count under '?').
 */
export async function metricByLabel(
  url: string,
  metric: string,
  label: string,
): Promise<Map<string, number>> {
  const text = (await send(`${url}/metrics`, null, { method: 'GET' })).text;
  const sums = new Map<string, number>();
  for (const m of text.matchAll(new RegExp(`^${metric}\\{([^}]*)\\} ([\\d.e+-]+)$`, 'gm'))) {
    const value = new RegExp(`${label}="([^"]*)"`).exec(m[1])?.[1] ?? '?';
    sums.set(value, (sums.get(value) ?? 0) + Number(m[2]));
  }
  return sums;
}

/** `nodejs_gc_duration_seconds_count` of a worker's own /metrics, by kind (major, minor, …). */
export async function gcCounts(url: string): Promise<Record<string, number>> {
  return Object.fromEntries(await metricByLabel(url, 'nodejs_gc_duration_seconds_count', 'kind'));
}

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

export interface PostOptions {
  headers?: Record<string, string | number>;
  /** Send the body as these pieces with Transfer-Encoding: chunked. */
  chunks?: Buffer[];
  method?: string;
  agent?: Agent | false;
  /**
   * Give up (reject with "timed out") when the socket is idle this long, as a real client does: a
   * connection the cluster primary hands to a worker that is killed at that moment is never
   * answered nor closed (see test/cluster/pm2-lifecycle.e2e.test.ts).
   */
  timeoutMs?: number;
}

/** One request with node:http; the body is a Buffer (Content-Length) or chunks. */
export function send(url: string, body: Buffer | null, options: PostOptions = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...(options.headers ?? {}) };
    if (body !== null && options.chunks === undefined) headers['content-length'] = body.length;
    const req = request(
      url,
      { method: options.method ?? 'POST', headers, agent: options.agent ?? false },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => {
          const text = Buffer.concat(parts).toString('utf8');
          let json: unknown = undefined;
          try {
            json = JSON.parse(text);
          } catch {
            // not JSON (e.g. /metrics)
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (options.timeoutMs !== undefined)
      req.setTimeout(options.timeoutMs, () => req.destroy(new Error('timed out')));
    if (options.chunks !== undefined) {
      for (const c of options.chunks) req.write(c);
      req.end();
    } else {
      req.end(body ?? undefined);
    }
  });
}
