/**
 * The commit record's format: what the committer writes reads back as written, and anything
 * damaged reads as unreadable instead of as offsets to truncate to.
 */
import { describe, expect, it } from '@jest/globals';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import {
  cleanRecord,
  parseCommitRecord,
  pendingRecord,
  readCommitRecordFile,
} from '../../src/csv/commit-record.js';
import { tempDir } from '../support/server.js';

const csv = { path: '/var/lib/ingest/données-2030-01-31.csv', dev: 2049, ino: 131077 };
const quarantine = { path: '/var/lib/ingest/données-2030-01-31.quarantine.ndjson', dev: 2049, ino: 9 };

function parse(text: string | Buffer) {
  const bytes = Buffer.alloc(4096, 0x78); // stale bytes past the end must not be read
  const n = Buffer.isBuffer(text) ? text.copy(bytes) : bytes.write(text);
  return parseCommitRecord(bytes, n);
}

describe('the commit record', () => {
  it('reads a PENDING record back as written (a non-ASCII path counts in bytes)', () => {
    expect(parse(pendingRecord(csv, 1234, quarantine, 56))).toEqual({
      state: 'pending',
      csv: { ...csv, start: 1234 },
      quarantine: { ...quarantine, start: 56 },
    });
    expect(parse(pendingRecord(csv, 0, null, 0).padEnd(1024, ' '))).toEqual({
      state: 'pending',
      csv: { ...csv, start: 0 },
      quarantine: null,
    });
  });

  it('reads a CLEAN record with offsets (CSV_FSYNC) back as written', () => {
    expect(parse(cleanRecord(csv, 1234, 2000, quarantine, 56, 99).padEnd(1024, ' '))).toEqual({
      state: 'clean',
      csv: { ...csv, start: 1234, end: 2000 },
      quarantine: { ...quarantine, start: 56, end: 99 },
    });
    expect(parse(cleanRecord(csv, 0, 10, null, 0, 0))).toEqual({
      state: 'clean',
      csv: { ...csv, start: 0, end: 10 },
      quarantine: null,
    });
  });

  it('reads a CLEAN record with offsets cut short, or with any one byte changed, as unreadable', () => {
    const record = Buffer.from(cleanRecord(csv, 1234, 2000, quarantine, 56, 99));
    // Cut to `CLEAN` and spaces it reads as an operator's plain CLEAN (tested above).
    for (let cut = 7; cut < record.length; cut++) {
      expect(parse(record.subarray(0, cut))).toMatchObject({ state: 'unreadable' });
    }
    for (let i = 0; i < record.length - 1; i++) {
      const damaged = Buffer.from(record);
      damaged[i] ^= 0x01;
      if (damaged[i] === 0x0a) continue;
      expect(parse(damaged)).toMatchObject({ state: 'unreadable' });
    }
  });

  it('reads a CLEAN record whose span ends before it begins as unreadable', () => {
    const json = JSON.stringify([csv.path, 1, 2, 30, 20, '', 0, 0, 0, 0]);
    const crc = crc32(json).toString(16).padStart(8, '0');
    expect(parse(`CLEAN ${Buffer.byteLength(json)} ${crc} ${json}\n`)).toMatchObject({
      state: 'unreadable',
      reason: 'the record does not have the fields of CLEAN',
    });
  });

  it.each([
    ['CLEAN as the committer writes it', 'CLEAN\n'.padEnd(1024, ' ')],
    ['CLEAN written by echo', 'CLEAN\n'],
    ['CLEAN written by printf without LF', 'CLEAN'],
    ['a new, empty lock file', ''],
  ])('reads as clean: %s', (_, text) => {
    expect(parse(text)).toEqual({ state: 'clean' });
  });

  it('reads a record cut short anywhere as unreadable, also over an older, longer record', () => {
    const record = pendingRecord(csv, 1234, quarantine, 56);
    const older = pendingRecord({ ...csv, path: `${csv.path}.longer.name` }, 1, quarantine, 2);
    for (let cut = 1; cut < record.length; cut++) {
      const bytes = Buffer.from(record).subarray(0, cut);
      expect(parse(bytes)).toMatchObject({ state: 'unreadable' });
      const over = Buffer.from(older.padEnd(1024, ' '));
      bytes.copy(over);
      // Unless the part written is what the older record had there: then it is the older record.
      if (over.equals(Buffer.from(older.padEnd(1024, ' ')))) continue;
      expect(parse(over)).toMatchObject({ state: 'unreadable' });
    }
  });

  it('reads a record with any one byte changed as unreadable', () => {
    const record = Buffer.from(pendingRecord(csv, 1234, quarantine, 56));
    for (let i = 0; i < record.length - 1; i++) {
      for (const bit of [0x01, 0x10]) {
        const damaged = Buffer.from(record);
        damaged[i] ^= bit;
        if (damaged[i] === 0x0a) continue; // an LF earlier: the cut-short case
        expect(parse(damaged)).toMatchObject({ state: 'unreadable' });
      }
    }
  });

  it.each([
    ['the format without length and CRC', `PENDING ${JSON.stringify([csv.path, 1, 2, 3, '', 0, 0, 0])}\n`],
    ['zero bytes (a page lost on power loss)', Buffer.alloc(1024)],
    ['spaces', ' '.repeat(1024)],
    ['a word', 'CLEANED\n'],
  ])('reads %s as unreadable', (_, text) => {
    expect(parse(text)).toMatchObject({ state: 'unreadable' });
  });

  it('reads a record with a valid CRC but not the fields of PENDING as unreadable', () => {
    const json = JSON.stringify([csv.path, 1, 2, -3, '', 0, 0, 0]);
    const crc = crc32(json).toString(16).padStart(8, '0');
    const text = `PENDING ${Buffer.byteLength(json)} ${crc} ${json}`;
    expect(parse(`${text}\n`)).toEqual({
      state: 'unreadable',
      text,
      reason: 'the record does not have the fields of PENDING',
    });
  });

  it('names why, and keeps the text for the log', () => {
    const record = pendingRecord(csv, 1234, null, 0).replace('1234', '1235');
    expect(parse(record)).toEqual({
      state: 'unreadable',
      text: record.trimEnd(),
      reason: 'the CRC-32 does not match the record',
    });
  });

  it('reads a lock file that does not exist yet as CLEAN, and a file as it holds', () => {
    const dir = tempDir();
    expect(readCommitRecordFile(join(dir, '.t.lock'))).toEqual({ state: 'clean' });
    writeFileSync(join(dir, '.t.lock'), 'PENDING 3');
    expect(readCommitRecordFile(join(dir, '.t.lock'))).toMatchObject({
      state: 'unreadable',
      text: 'PENDING 3',
    });
  });
});
