/**
 * A fleet behind a real load balancer (issue 14): three hosts, each in its own network namespace
 * (veth to this one), each started with `npm start` (pm2-runtime) with its own NODE_NAME and
 * CSV_DIR and SHUTDOWN_DELAY_MS, behind deploy/haproxy/haproxy.cfg as shipped (addresses from the
 * environment). Under a steady tagged load through HAProxy:
 * - `kill -9` of every process of host 1: requests sent 3 s later all succeed;
 * - SIGTERM to host 2 (pm2-runtime): no request fails;
 * - host 1 started again: it gets traffic again;
 * - every acknowledged request's rows appear once, whole and contiguous, across the fleet's files.
 * The same with deploy/nginx/nginx.conf (passive checks: a refused connection goes to the next
 * host). Needs root (network namespaces), haproxy and nginx; elsewhere it reports itself skipped.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, ROOT, send, tempDir } from '../support/server.js';

/** Root, the tools, and a network namespace can really be made here (a container may forbid it). */
function fleetPossible(): boolean {
  if (process.getuid?.() !== 0) return false;
  if (spawnSync('sh', ['-c', 'command -v haproxy && command -v ip']).status !== 0) return false;
  const probe = `ingestprobe${process.pid % 10000}`;
  const made = spawnSync('ip', ['netns', 'add', probe]).status === 0;
  if (made) spawnSync('ip', ['netns', 'del', probe]);
  return made;
}
const canRun = fleetPossible();
if (!canRun)
  console.warn('fleet test skipped: needs root, ip (iproute2), network namespaces and haproxy');

const TAG = process.pid % 10000;
const NET = 100 + (process.pid % 100); // 10.NET.k.0/24 for host k
const HOSTS = [1, 2, 3];
const ns = (k: number) => `ingest${TAG}h${k}`;
const addr = (k: number) => `10.${NET}.${k}.2`;

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: 'pipe' });
}

interface Host {
  k: number;
  dir: string;
  csvDir: string;
  proc: ChildProcess | null;
}

function startHost(h: Host): void {
  h.proc = spawn(
    'ip',
    [
      'netns',
      'exec',
      ns(h.k),
      'env',
      '-i',
      `PATH=${process.env.PATH}`,
      `HOME=${h.dir}`,
      `PM2_HOME=${join(h.dir, 'pm2')}`,
      `NODE_NAME=host${h.k}`,
      `CSV_DIR=${h.csvDir}`,
      'HOST=0.0.0.0',
      'PORT=8888',
      'INSTANCES=1',
      'SHUTDOWN_DELAY_MS=2500',
      'LOG_LEVEL=warn',
      'npm',
      'start',
    ],
    { cwd: ROOT, stdio: 'ignore' },
  );
}

function pidsOf(k: number): number[] {
  const out = spawnSync('ip', ['netns', 'pids', ns(k)], { encoding: 'utf8' }).stdout;
  return out.split('\n').filter(Boolean).map(Number);
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

/** The status of a GET, or 0 when there is no answer within a second. */
function get(url: string): Promise<number> {
  return send(url, null, { method: 'GET', timeoutMs: 1000 }).then(
    (a) => a.status,
    () => 0,
  );
}

async function waitHealthy(k: number, timeoutMs = 60000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if ((await get(`http://${addr(k)}:8888/health`)) === 200) return;
    await sleep(250);
  }
  throw new Error(`host ${k} did not become ready`);
}

interface Sent {
  r: number;
  at: number;
  status: number;
}

/** Starts the balancer on 127.0.0.1:port in front of the three hosts, from the shipped file. */
function startBalancer(kind: 'haproxy' | 'nginx', port: number): ChildProcess {
  if (kind === 'haproxy') {
    return spawn('haproxy', ['-db', '-f', join(ROOT, 'deploy/haproxy/haproxy.cfg')], {
      env: {
        PATH: process.env.PATH,
        LISTEN: `127.0.0.1:${port}`,
        HOST1: `${addr(1)}:8888`,
        HOST2: `${addr(2)}:8888`,
        HOST3: `${addr(3)}:8888`,
      },
      stdio: 'ignore',
    });
  }
  // nginx has no environment in its configuration: the addresses and the port are rewritten.
  const prefix = tempDir('nginx-');
  const conf = readFileSync(join(ROOT, 'deploy/nginx/nginx.conf'), 'utf8')
    .replaceAll('10.0.0.11:8888', `${addr(1)}:8888`)
    .replaceAll('10.0.0.12:8888', `${addr(2)}:8888`)
    .replaceAll('10.0.0.13:8888', `${addr(3)}:8888`)
    .replace('listen 8080;', `listen 127.0.0.1:${port};`);
  writeFileSync(join(prefix, 'nginx.conf'), conf);
  // As root, nginx's workers would run as nobody, who cannot write the temporary folders here.
  return spawn(
    'nginx',
    ['-c', join(prefix, 'nginx.conf'), '-p', `${prefix}/`, '-g', 'daemon off; user root;'],
    {
      stdio: 'ignore',
    },
  );
}

describe.each(['haproxy', 'nginx'] as const)('a fleet of 3 hosts behind %s', (kind) => {
  if (!canRun || (kind === 'nginx' && spawnSync('sh', ['-c', 'command -v nginx']).status !== 0)) {
    it.skip('needs root, ip (iproute2), haproxy and nginx', () => undefined);
    return;
  }
  fleet(kind);
});

function fleet(kind: 'haproxy' | 'nginx'): void {
  const hosts: Host[] = HOSTS.map((k) => {
    const dir = tempDir(`fleet-${kind}-h${k}-`);
    return { k, dir, csvDir: join(dir, 'csv'), proc: null };
  });
  let balancer: ChildProcess | null = null;
  let port = 0;

  beforeAll(async () => {
    for (const h of hosts) {
      mkdirSync(h.csvDir, { recursive: true });
      ip('netns', 'add', ns(h.k));
      ip('link', 'add', `vi${TAG}h${h.k}`, 'type', 'veth', 'peer', 'name', `vo${TAG}h${h.k}`);
      ip('link', 'set', `vo${TAG}h${h.k}`, 'netns', ns(h.k));
      ip('addr', 'add', `10.${NET}.${h.k}.1/24`, 'dev', `vi${TAG}h${h.k}`);
      ip('link', 'set', `vi${TAG}h${h.k}`, 'up');
      ip(
        'netns',
        'exec',
        ns(h.k),
        'ip',
        'addr',
        'add',
        `${addr(h.k)}/24`,
        'dev',
        `vo${TAG}h${h.k}`,
      );
      ip('netns', 'exec', ns(h.k), 'ip', 'link', 'set', `vo${TAG}h${h.k}`, 'up');
      ip('netns', 'exec', ns(h.k), 'ip', 'link', 'set', 'lo', 'up');
    }
    // One after another: each `npm start` builds dist/ first, and two builds at once would
    // rewrite files a starting worker reads.
    for (const h of hosts) {
      startHost(h);
      await waitHealthy(h.k);
    }
    port = await freePort();
    balancer = startBalancer(kind, port);
    const until = Date.now() + 15000;
    while ((await get(`http://127.0.0.1:${port}/health`)) !== 200) {
      if (Date.now() > until) throw new Error(`${kind} did not answer`);
      await sleep(200);
    }
  }, 240000);

  afterAll(async () => {
    if (balancer?.pid !== undefined) balancer.kill('SIGTERM');
    for (const h of hosts) {
      for (const pid of pidsOf(h.k))
        if (cmdline(pid).includes('pm2-runtime')) process.kill(pid, 'SIGTERM');
    }
    await sleep(4000);
    for (const h of hosts) {
      for (const pid of pidsOf(h.k)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      spawnSync('ip', ['netns', 'del', ns(h.k)]);
      spawnSync('ip', ['link', 'del', `vi${TAG}h${h.k}`]);
    }
  }, 30000);

  it('loses nothing acknowledged when a host dies, fails nothing when one drains, and takes back a restarted host', async () => {
    const url = `http://127.0.0.1:${port}/ingest`;
    const agent = new Agent({ keepAlive: true, maxSockets: 4 });
    const sent: Sent[] = [];
    const rowsOf = (r: number) => 1 + (r % 20);
    let next = 0;
    let running = true;
    const post = (r: number): Promise<number> =>
      new Promise((resolve) => {
        let text = '';
        for (let i = 0; i < rowsOf(r); i++) text += `{"vendorid":"f${r}","trip_distance":${i}}\n`;
        const body = Buffer.from(text);
        const req = request(
          url,
          { method: 'POST', agent, headers: { 'content-length': body.length }, timeout: 10000 },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.on('timeout', () => req.destroy());
        req.on('error', () => resolve(0));
        req.end(body);
      });
    const t0 = Date.now();
    const loops = Array.from({ length: 4 }, async () => {
      while (running) {
        const r = next++;
        const at = Date.now() - t0;
        sent.push({ r, at, status: await post(r) });
        await sleep(10);
      }
    });

    await sleep(3000);
    // kill -9 of the whole host 1: npm, pm2-runtime and its worker.
    const killAt = Date.now() - t0;
    for (const pid of pidsOf(1)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch (err) {
        // A short-lived process of the host (a shell pm2 ran) exited since the listing.
        if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
      }
    }
    await sleep(5000);
    // SIGTERM to host 2's pm2-runtime: /health 503, 2.5 s of lame duck, then the drain.
    const termAt = Date.now() - t0;
    const runtime = pidsOf(2).find((pid) => cmdline(pid).includes('pm2-runtime'));
    expect(runtime).toBeDefined();
    process.kill(runtime!, 'SIGTERM');
    await sleep(6000);
    // Host 1 again, on the same folder and name.
    const before1 = fleetRows(hosts[0].csvDir);
    startHost(hosts[0]);
    await waitHealthy(1);
    await sleep(4000);
    running = false;
    await Promise.all(loops);
    agent.destroy();

    const afterKill = sent.filter((s) => s.at >= killAt + 3000);
    const afterTerm = sent.filter((s) => s.at >= termAt);
    expect(afterKill.length).toBeGreaterThan(50);
    expect(afterKill.filter((s) => s.status !== 200)).toEqual([]);
    expect(afterTerm.filter((s) => s.status !== 200)).toEqual([]);
    // The restarted host took requests again.
    expect(fleetRows(hosts[0].csvDir)).toBeGreaterThan(before1);

    // Every acknowledged request once, whole, in one host's file; nothing torn anywhere.
    const runs = new Map<number, { host: number; rows: number[] }[]>();
    let torn = 0;
    for (const h of hosts) {
      for (const f of readdirSync(h.csvDir).filter((f) =>
        new RegExp(`^nyc_taxi-\\d{4}-\\d{2}-\\d{2}\\.host${h.k}\\.csv$`).test(f),
      )) {
        let last = -1;
        for (const line of readFileSync(join(h.csvDir, f), 'utf8').split('\r\n')) {
          if (line === '') continue;
          const m = /^f(\d+),,(\d+),$/.exec(line);
          if (m === null) {
            torn++;
            continue;
          }
          const r = Number(m[1]);
          const list = runs.get(r) ?? [];
          if (r !== last) list.push({ host: h.k, rows: [] });
          list[list.length - 1].rows.push(Number(m[2]));
          runs.set(r, list);
          last = r;
        }
      }
    }
    expect(torn).toBe(0);
    const acked = sent.filter((s) => s.status === 200);
    const wrong = acked.filter((s) => {
      const list = runs.get(s.r) ?? [];
      return (
        list.length !== 1 ||
        list[0].rows.length !== rowsOf(s.r) ||
        list[0].rows.some((i, k) => i !== k)
      );
    });
    expect(wrong.map((s) => s.r)).toEqual([]);
    // All three hosts took part.
    expect(new Set([...runs.values()].flatMap((l) => l.map((x) => x.host)))).toEqual(
      new Set([1, 2, 3]),
    );
    console.log(
      `fleet behind ${kind}: ${sent.length} requests, ${acked.length} acknowledged; failed: ` +
        `${sent.length - acked.length} (all before kill + 3 s: ${sent.filter((s) => s.status !== 200).every((s) => s.at < killAt + 3000)})`,
    );
  }, 180000);
}

function fleetRows(csvDir: string): number {
  if (!existsSync(csvDir)) return 0;
  return readdirSync(csvDir)
    .filter((f) => f.endsWith('.csv'))
    .reduce((n, f) => n + readFileSync(join(csvDir, f), 'utf8').split('\r\n').length - 1, 0);
}
