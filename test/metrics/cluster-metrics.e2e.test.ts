/**
 * Metrics of the whole pm2 cluster on one scrape, read by a real Prometheus (Debian's package).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent } from 'node:http';
import { freePort, send, tempDir } from '../support/server.js';
import { startCluster, waitFor, type Pm2Cluster } from '../support/pm2.js';
import { taxiBody } from '../support/taxi.js';

/** Parses Prometheus text into samples: name, labels, value. */
function samples(text: string): { name: string; labels: Record<string, string>; value: number }[] {
  const out: { name: string; labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (m === null) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[3] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

describe('GET /metrics on a 2-worker pm2 cluster', () => {
  let cluster: Pm2Cluster;
  const body = taxiBody(300, 5);
  const bad = Buffer.from('{"vendorid":1}\nnope\n{"vendorid":2}\n');
  const REQUESTS = 60;
  /** Body bytes sent by the earlier tests, which the Prometheus test's total includes. */
  let sentEarlier = 0;

  beforeAll(async () => {
    // Info level: the request log lines are checked too.
    cluster = await startCluster(2, { LOG_LEVEL: 'info' });
  }, 60000);
  afterAll(async () => {
    await cluster?.kill();
  });

  it('one scrape returns every worker, and the per-worker series sum to what was sent', async () => {
    // Fresh connections, so pm2's round robin spreads the requests over both workers.
    for (let i = 0; i < REQUESTS; i++) {
      const a = await send(`${cluster.url}/ingest`, i % 2 === 0 ? body : bad);
      expect(a.status).toBe(200);
    }
    const scrape = await send(`${cluster.url}/metrics`, null, { method: 'GET' });
    expect(scrape.status).toBe(200);
    expect(scrape.headers['content-type']).toMatch(/^text\/plain/);
    const all = samples(scrape.text);
    const of = (name: string, match: Record<string, string> = {}) =>
      all.filter(
        (s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v),
      );

    const received = of('ingest_received_bytes_total');
    expect(new Set(received.map((s) => s.labels.worker))).toEqual(new Set(['0', '1']));
    expect(received.every((s) => s.value > 0)).toBe(true); // both workers took requests
    const sum = (xs: { value: number }[]) => xs.reduce((t, s) => t + s.value, 0);
    sentEarlier += (REQUESTS / 2) * (body.length + bad.length);
    expect(sum(received)).toBe(sentEarlier);
    expect(sum(of('ingest_records_total', { result: 'valid' }))).toBe((REQUESTS / 2) * (300 + 2));
    expect(sum(of('ingest_records_total', { result: 'invalid' }))).toBe(REQUESTS / 2);
    expect(sum(of('ingest_requests_total', { status: '200' }))).toBe(REQUESTS);
    expect(sum(of('ingest_parse_duration_seconds_count'))).toBe(REQUESTS);
    expect(sum(of('ingest_request_duration_seconds_count'))).toBe(REQUESTS);
    expect(sum(of('csv_write_duration_seconds_count'))).toBe(REQUESTS);
    expect(of('ingest_in_flight_requests')).toHaveLength(2);
    expect(of('process_resident_memory_bytes')).toHaveLength(2);
    expect(of('ingest_metrics_workers_missing')[0].value).toBe(0);
    // Valid Prometheus text: each family's HELP and TYPE once.
    const types = scrape.text.split('\n').filter((l) => l.startsWith('# TYPE '));
    expect(new Set(types).size).toBe(types.length);
  });

  it("each request's log line reaches the app's pm2 log (pm2 logs), not the daemon's", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) {
      const a = await send(`${cluster.url}/ingest`, bad);
      expect(a.status).toBe(200);
      sentEarlier += bad.length;
      ids.push(String(a.headers['x-request-id']));
    }
    const appLog = join(cluster.home, 'logs', 'ndjson-ingest-out.log');
    const linesOf = (file: string) =>
      readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    // Lines are batched and flushed at least once a second.
    await waitFor(() => {
      const seen = new Set(linesOf(appLog).map((l) => l.request_id));
      return Promise.resolve(ids.every((id) => seen.has(id)));
    }, 10000);
    for (const id of ids) {
      const mine = linesOf(appLog).filter((l) => l.request_id === id);
      expect(mine).toHaveLength(1);
      expect(mine[0]).toMatchObject({ msg: 'ingest', status: 200, valid: 2, invalid: 1 });
    }
    const daemonLog = readFileSync(join(cluster.home, 'pm2.log'), 'utf8');
    expect(ids.some((id) => daemonLog.includes(id))).toBe(false);
  });

  it('a real Prometheus scrapes it and rate(ingest_received_bytes_total) reads back', async () => {
    const dir = tempDir('prom-');
    const promPort = await freePort();
    writeFileSync(
      join(dir, 'prometheus.yml'),
      [
        'global:',
        '  scrape_interval: 1s',
        'scrape_configs:',
        '  - job_name: ndjson-ingest',
        '    static_configs:',
        `      - targets: ['127.0.0.1:${cluster.port}']`,
        '',
      ].join('\n'),
    );
    const prom: ChildProcess = spawn(
      'prometheus',
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
      ],
      { stdio: 'ignore' },
    );
    const query = async (q: string) => {
      const a = await send(
        `http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(q)}`,
        null,
        { method: 'GET' },
      );
      return a.json as { status: string; data: { result: { value: [number, string] }[] } };
    };
    try {
      await waitFor(async () => (await query('up')).data.result.length > 0, 30000);
      // Steady traffic for a few seconds, so the counter rises over several scrapes.
      const agent = new Agent({ keepAlive: false });
      const until = Date.now() + 5000;
      let sent = 0;
      while (Date.now() < until) {
        const a = await send(`${cluster.url}/ingest`, body, { agent });
        expect(a.status).toBe(200);
        sent += body.length;
      }
      // A 30 s window still holds the traffic's scrapes while a slow machine gets to the query.
      let rate = 0;
      await waitFor(async () => {
        const r = await query('sum(rate(ingest_received_bytes_total[30s]))');
        rate = Number(r.data.result[0]?.value[1] ?? 0);
        return rate > 0;
      }, 15000);
      expect(rate).toBeGreaterThan(0);
      // The counter as Prometheus stored it covers every byte sent (earlier tests included).
      let total = 0;
      const expected = sent + sentEarlier;
      await waitFor(async () => {
        const r = await query('sum(ingest_received_bytes_total)');
        total = Number(r.data.result[0]?.value[1] ?? 0);
        return total === expected;
      }, 15000);
      expect(total).toBe(expected);
      let workers = '';
      await waitFor(async () => {
        const r = await query('count(ingest_received_bytes_total)');
        workers = r.data.result[0]?.value[1] ?? '';
        return workers === '2';
      }, 15000);
      expect(workers).toBe('2');
    } finally {
      const exited = new Promise((resolve) => prom.once('exit', resolve));
      if (prom.exitCode === null && prom.signalCode === null) {
        prom.kill('SIGTERM');
        await exited;
      }
    }
  }, 90000);
});
