/**
 * Two datasets committed concurrently by a real 2-worker pm2 cluster (SPEC §6, §8): each dataset's
 * file holds whole rows, each acknowledged request once and contiguous, its header once at the
 * top, and nothing of the other dataset.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { join } from 'node:path';
import { localDay } from '../../src/csv/csv-committer.js';
import { send, tempDir, type Answer } from '../support/server.js';
import { startCluster, type Pm2Cluster } from '../support/pm2.js';

const REQUESTS = 400;

const DATASETS = `
datasets:
  trips:
    header: true
    eol: lf
    columns:
      - { name: tag, path: $.tag, type: string }
      - { name: i, path: $.i, type: int }
      - { name: at, path: $.at, type: datetime }
  events:
    prefix: app_events
    columns:
      - { name: tag, path: $.meta.tag }
      - { name: i, path: '$.meta.seq[0]', type: int }
      - { name: n, meta: line }
`;

function body(r: number, count: number): Buffer {
  let text = '';
  for (let i = 0; i < count; i++) {
    text +=
      r % 2 === 0
        ? `{"tag":"r${r}","i":${i},"at":${1700000000 + i}}\n`
        : `{"meta":{"tag":"r${r}","seq":[${i}]}}\n`;
  }
  return Buffer.from(text);
}

/** Runs of consecutive rows with the same tag; every line must match `whole`. */
function runs(lines: string[], whole: RegExp): Map<string, number[]> {
  const torn = lines.filter((l) => !whole.test(l));
  expect(torn.slice(0, 3)).toEqual([]);
  const out = new Map<string, number[]>();
  let last = '';
  for (const line of lines) {
    const [tag, i] = line.split(',');
    if (tag !== last) {
      // A tag in one run only: no other request's rows inside it.
      expect(out.has(tag)).toBe(false);
      out.set(tag, []);
      last = tag;
    }
    out.get(tag)!.push(Number(i));
  }
  return out;
}

describe('pm2 cluster, 2 workers, 2 datasets', () => {
  let cluster: Pm2Cluster;

  beforeAll(async () => {
    const file = join(tempDir('datasets-'), 'datasets.yaml');
    writeFileSync(file, DATASETS);
    // Overload refusals off (in-flight limit and load shedding): every request must be taken.
    cluster = await startCluster(2, {
      MAX_IN_FLIGHT: '4096',
      SHED_EVENT_LOOP_DELAY_MS: '0',
      SHED_EVENT_LOOP_TURN_MS: '0',
      DATASETS_FILE: file,
    });
  }, 60000);

  afterAll(async () => {
    await cluster?.kill();
  });

  it(`${REQUESTS} concurrent requests to two datasets: nothing interleaved, header once`, async () => {
    const counts = Array.from({ length: REQUESTS }, (_, r) => 1 + ((r * 37) % 300));
    const agent = new Agent({ keepAlive: true, maxSockets: 400 });
    const answers: (Answer | Error)[] = await Promise.all(
      counts.map((count, r) => {
        const b = body(r, count);
        return send(`${cluster.url}/ingest/${r % 2 === 0 ? 'trips' : 'events'}`, b, {
          agent,
          chunks:
            r % 3 === 0 ? [b.subarray(0, b.length >> 1), b.subarray(b.length >> 1)] : undefined,
        }).catch((err: Error) => err);
      }),
    );
    agent.destroy();
    const failures = answers
      .map((a, r) =>
        a instanceof Error ? `${r}: ${a.message}` : a.status !== 200 ? `${r}: ${a.text}` : '',
      )
      .filter((x) => x !== '');
    expect(failures.slice(0, 5)).toEqual([]);

    const day = localDay(new Date());
    const trips = readFileSync(join(cluster.csvDir, `trips-${day}.csv`), 'utf8');
    expect(trips.startsWith('tag,i,at\n')).toBe(true);
    const tripRuns = runs(
      trips.slice('tag,i,at\n'.length, -1).split('\n'),
      /^r\d*[02468],\d+,2023-11-1[45] \d\d:\d\d:\d\d$/,
    );
    const events = readFileSync(join(cluster.csvDir, `app_events-${day}.csv`), 'utf8');
    const eventRuns = runs(events.slice(0, -2).split('\r\n'), /^r\d*[13579],\d+,\d+$/);
    for (const [r, count] of counts.entries()) {
      const seen = (r % 2 === 0 ? tripRuns : eventRuns).get(`r${r}`);
      expect(seen).toEqual(Array.from({ length: count }, (_, i) => i));
    }
    expect(tripRuns.size + eventRuns.size).toBe(REQUESTS);

    // The cluster scrape carries both datasets' series from both workers.
    const metrics = (await send(`${cluster.url}/metrics`, null, { method: 'GET' })).text;
    for (const d of ['trips', 'events']) {
      const total = [
        ...metrics.matchAll(
          new RegExp(
            `^ingest_requests_total\\{dataset="${d}",status="200",worker="\\d+"\\} (\\d+)`,
            'gm',
          ),
        ),
      ].reduce((n, m) => n + Number(m[1]), 0);
      expect(total).toBe(REQUESTS / 2);
    }
  }, 180000);
});
