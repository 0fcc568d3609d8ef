/**
 * Quarantine amplification (issue 13, item 7): a line of control bytes is kept as raw_base64 (4/3)
 * rather than JSON-escaped (6×), and a request's quarantine records are bounded.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { localDay } from '../../src/csv/csv-committer.js';
import { quarantineRecord } from '../../src/ingest/ingest-body.js';
import { send, startServer, type RunningServer } from '../support/server.js';

function dayFile(s: RunningServer, suffix: string): string {
  return join(s.csvDir, `nyc_taxi-${localDay(new Date())}.${suffix}`);
}

describe('quarantineRecord', () => {
  it('keeps a readable line as raw, escaped', () => {
    const raw = Buffer.from('{"a":1,\t"b":"x"');
    const rec = JSON.parse(quarantineRecord('r1', 3, 'invalid_json', raw, raw.length)) as Record<
      string,
      unknown
    >;
    expect(rec).toEqual({ request_id: 'r1', line: 3, error: 'invalid_json', raw: raw.toString() });
  });

  it('uses raw_base64 when escaping would grow the line past 4/3', () => {
    const raw = Buffer.alloc(999, 0x01);
    const text = quarantineRecord('r1', 1, 'invalid_json', raw, raw.length);
    const rec = JSON.parse(text) as { raw_base64: string; raw?: string };
    expect(rec.raw).toBeUndefined();
    expect(Buffer.from(rec.raw_base64, 'base64').equals(raw)).toBe(true);
    expect(text.length).toBeLessThan(raw.length * 1.4 + 100);
  });

  it('keeps raw_base64 for a line that is not UTF-8', () => {
    const raw = Buffer.from([0x7b, 0xff, 0x7d]);
    const rec = JSON.parse(quarantineRecord('r1', 1, 'invalid_utf8', raw, 3)) as Record<
      string,
      string
    >;
    expect(Buffer.from(rec.raw_base64, 'base64').equals(raw)).toBe(true);
  });
});

describe('quarantine bytes per request', () => {
  let s: RunningServer;
  beforeAll(async () => {
    s = await startServer({
      MAX_QUARANTINE_BYTES: String(256 * 1024),
      SPILL_THRESHOLD_BYTES: '4096',
    });
  });
  afterAll(async () => {
    await s.stop();
  });

  it('a small gzip body of control bytes writes a quarantine file near its decoded size, not 6×', async () => {
    const line = Buffer.concat([Buffer.alloc(1000, 0x01), Buffer.from('\n')]);
    const decoded = Buffer.concat(Array.from({ length: 150 }, () => line));
    const a = await send(`${s.url}/`, gzipSync(decoded), {
      headers: { 'content-encoding': 'gzip' },
    });
    expect(a.status).toBe(200);
    expect(a.json.result.stats.records.invalid).toBe(150);
    const size = statSync(dayFile(s, 'quarantine.ndjson')).size;
    expect(size).toBeGreaterThan(150 * 1000);
    expect(size).toBeLessThan(150 * 1000 * 1.34 + 150 * 150);
  });

  it('413 quarantine_too_large past MAX_QUARANTINE_BYTES, and nothing is written', async () => {
    const qBefore = statSync(dayFile(s, 'quarantine.ndjson')).size;
    const csvPath = dayFile(s, 'csv');
    const csvBefore = existsSync(csvPath) ? readFileSync(csvPath).length : 0;
    // Valid rows first, then 3,000 invalid lines of ~100 bytes: ~450 KB of records.
    const body =
      '{"vendorid":"kept-before"}\n'.repeat(100) + `not json ${'x'.repeat(90)}\n`.repeat(3000);
    const a = await send(`${s.url}/`, Buffer.from(body));
    expect(a.status).toBe(413);
    expect(a.json.result.error.code).toBe('quarantine_too_large');
    expect(statSync(dayFile(s, 'quarantine.ndjson')).size).toBe(qBefore);
    expect(existsSync(csvPath) ? readFileSync(csvPath).length : 0).toBe(csvBefore);
    // The worker goes on.
    const ok = await send(`${s.url}/`, Buffer.from('{"vendorid":"after"}\n'));
    expect(ok.status).toBe(200);
  });
});
