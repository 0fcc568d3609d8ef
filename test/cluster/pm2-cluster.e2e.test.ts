/**
 * The real pm2 cluster (2 workers, each with its own append descriptors on the same day file):
 * many concurrent requests of varied sizes with uniquely tagged rows; every line must be a whole
 * row, and every acknowledged request's rows present once, contiguous and in order.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { readSlots } from '../../src/runtime/connection-balance.js';
import { localDay } from '../../src/csv/csv-committer.js';
import { send, type Answer } from '../support/server.js';
import { requestsByWorker, startCluster, waitFor, type Pm2Cluster } from '../support/pm2.js';
import { prng } from '../support/taxi.js';

const REQUESTS = 1200;

/** Request r carries `count` rows tagged `r<r>`, with the row index in trip_distance. */
function requestBody(r: number, count: number): Buffer {
  let text = '';
  for (let i = 0; i < count; i++) {
    text += `{"vendorid":"r${r}","tpep_pickup_datetime":"2017-01-01 00:00:${i % 60}","trip_distance":${i},"total_amount":${r}.5}\n`;
  }
  return Buffer.from(text);
}

interface CsvRun {
  tag: string;
  rows: string[][];
}

/** Splits the CSV into runs of consecutive rows with the same tag; checks every line is whole. */
function runsOf(csv: string): CsvRun[] {
  expect(csv.endsWith('\r\n')).toBe(true);
  const lines = csv.slice(0, -2).split('\r\n');
  const runs: CsvRun[] = [];
  const whole = /^r\d+,2017-01-01 00:00:\d+,\d+,\d+\.5$/;
  // Plain checks per line (an expect() per line would dominate the test's time).
  const torn = lines.filter((line) => !whole.test(line));
  expect(torn.slice(0, 3)).toEqual([]);
  for (const line of lines) {
    const cells = line.split(',');
    const last = runs[runs.length - 1];
    if (last !== undefined && last.tag === cells[0]) last.rows.push(cells);
    else runs.push({ tag: cells[0], rows: [cells] });
  }
  return runs;
}

/** Open connections over the workers, as they share them with each other. */
function openConnections(csvDir: string): number {
  return readSlots(readFileSync(join(csvDir, '.nyc_taxi.connections')))
    .filter((s) => s.pid > 0)
    .reduce((sum, s) => sum + s.connections, 0);
}

describe('pm2 cluster, 2 workers', () => {
  let cluster: Pm2Cluster;

  beforeAll(async () => {
    // Overload refusals off (in-flight limit and load shedding): every request must be taken.
    cluster = await startCluster(2, {
      MAX_IN_FLIGHT: '4096',
      SHED_EVENT_LOOP_DELAY_MS: '0',
      SHED_EVENT_LOOP_TURN_MS: '0',
    });
  }, 60000);

  afterAll(async () => {
    await cluster?.kill();
  });

  it(`${REQUESTS} concurrent requests: whole rows, each acknowledged request once, contiguous, in order`, async () => {
    const random = prng(2026);
    const counts = Array.from({ length: REQUESTS }, () => {
      const x = random();
      return x < 0.6 ? 1 + Math.floor(x * 50) : x < 0.95 ? 100 + Math.floor(x * 900) : 3000;
    });
    const agent = new Agent({ keepAlive: true, maxSockets: 1000 });
    const sendStarted = Date.now();
    const answers: (Answer | Error)[] = await Promise.all(
      counts.map(async (count, r) => {
        const gzip = r % 5 === 0;
        const body = gzip ? gzipSync(requestBody(r, count)) : requestBody(r, count);
        try {
          return await send(`${cluster.url}/ingest`, body, {
            agent,
            headers: gzip ? { 'content-encoding': 'gzip' } : {},
            // Every third request in pieces, so bodies arrive over time and commits overlap.
            chunks:
              r % 3 === 0
                ? [body.subarray(0, body.length >> 1), body.subarray(body.length >> 1)]
                : undefined,
          });
        } catch (err) {
          return err as Error;
        }
      }),
    );
    agent.destroy();
    console.log(`sent ${REQUESTS} requests in ${Date.now() - sendStarted} ms`);
    const acked = new Set<number>();
    answers.forEach((a, r) => {
      if (!(a instanceof Error) && a.status === 200) {
        expect(a.json.result.stats.records.valid).toBe(counts[r]);
        acked.add(r);
      }
    });
    // On a healthy cluster every request is acknowledged.
    const failures = answers
      .map((a, r) =>
        a instanceof Error
          ? `${r}: ${a.message}`
          : a.status !== 200
            ? `${r}: ${a.status} ${a.text}`
            : '',
      )
      .filter((x) => x !== '');
    expect(failures.slice(0, 5)).toEqual([]);
    expect(acked.size).toBe(REQUESTS);

    const csv = readFileSync(join(cluster.csvDir, `nyc_taxi-${localDay(new Date())}.csv`), 'utf8');
    const runs = runsOf(csv);
    const seen = new Set<string>();
    for (const run of runs) {
      // A tag appears in one run only: its rows were not split by another request's.
      expect(seen.has(run.tag)).toBe(false);
      seen.add(run.tag);
      const r = Number(run.tag.slice(1));
      expect(acked.has(r)).toBe(true);
      expect(run.rows).toHaveLength(counts[r]);
      const outOfOrder = run.rows.findIndex((cells, i) => cells[2] !== String(i));
      expect(outOfOrder).toBe(-1);
    }
    expect(seen.size).toBe(acked.size);

    // Both workers took part.
    const metrics = (await send(`${cluster.url}/metrics`, null, { method: 'GET' })).text;
    expect(metrics).toContain('ingest_requests_total');
  }, 180000);

  it('spreads a burst of 8 keep-alive connections 4/4 over the 2 workers', async () => {
    // Node's cluster primary alone split such bursts 5/3 or 6/2 about half of the time
    // (src/runtime/connection-balance.ts). Each round sends 8 requests at once on the same 8 sockets.
    const body = requestBody(0, 10);
    // Warm workers, as after the test above when the file runs whole. Run alone on a fresh
    // cluster, this test saw 5/3 in 2 of 21 runs, and 0 of 20 after this round: the balance gives
    // way after 20 ms of refusals, and a worker busy with its first requests can be that slow.
    const warm = new Agent({ keepAlive: true, maxSockets: 8 });
    await Promise.all(
      Array.from({ length: 8 }, () => send(`${cluster.url}/ingest`, body, { agent: warm })),
    );
    warm.destroy();
    const before = await requestsByWorker(cluster.url);
    // The workers have counted every earlier connection (the scrape's too) as closed.
    await waitFor(async () => openConnections(cluster.csvDir) === 0, 10000);
    const agent = new Agent({ keepAlive: true, maxSockets: 8 });
    try {
      for (let round = 0; round < 4; round++) {
        const answers = await Promise.all(
          Array.from({ length: 8 }, () => send(`${cluster.url}/ingest`, body, { agent })),
        );
        expect(answers.map((a) => a.status)).toEqual(Array(8).fill(200));
      }
    } finally {
      agent.destroy();
    }
    const after = await requestsByWorker(cluster.url);
    const served = [...after].map(([w, n]) => n - (before.get(w) ?? 0)).sort((a, b) => a - b);
    expect(served).toEqual([16, 16]);
  }, 60000);
});
