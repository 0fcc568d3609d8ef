/**
 * The commit record at the start of the lock file (the protocol is in csv-committer.ts): `CLEAN`,
 * or `PENDING <byteLength> <crc32> <json>` naming where an unfinished commit began in each file,
 * or, with CSV_FSYNC, `CLEAN <byteLength> <crc32> <json>` naming where the last commit began and
 * ended in each file (what a power loss is repaired from).
 *
 * The byte length and the CRC-32 of the JSON let a damaged record tell itself apart from a valid
 * one. A record cut short (a file system that lost a page, a copy that stopped half-way) or edited
 * by hand fails the check and reads as unreadable, instead of throwing a SyntaxError on every
 * commit, or worse, parsing into offsets that would truncate the wrong bytes. Only `CLEAN` and an
 * empty file (a lock file just created) read as clean without a check; anything else that fails it
 * stops ingest until an operator looks (the recovery is in csv-committer.ts).
 *
 * CRC-32 over the JSON text only (≈ 200 bytes) costs well under a microsecond per commit; node:zlib
 * has it natively since Node 20.15 (package.json asks for ≥ 20.19).
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';

/** Bytes read back from the lock file: a record is one line shorter than this. */
export const RECORD_BYTES = 4096;

/** Where an unfinished commit began in one file, and which file it was (paths move on rotation). */
export interface RecordedFile {
  path: string;
  dev: number;
  ino: number;
  start: number;
}

/** An open file's identity, as the committer holds it. */
export interface FileIdentity {
  readonly path: string;
  readonly dev: number;
  readonly ino: number;
}

/** Where a finished commit began and ended in one file. */
export interface RecordedSpan extends RecordedFile {
  end: number;
}

export type CommitRecord =
  | {
      readonly state: 'clean';
      /** CLEAN with offsets (CSV_FSYNC): the last commit's span in each file it wrote. */
      readonly csv?: RecordedSpan;
      readonly quarantine?: RecordedSpan | null;
    }
  | {
      readonly state: 'pending';
      readonly csv: RecordedFile;
      readonly quarantine: RecordedFile | null;
    }
  | { readonly state: 'unreadable'; readonly text: string; readonly reason: string };

export const CLEAN_TEXT = 'CLEAN\n';
const CLEAN_LINE = Buffer.from(CLEAN_TEXT);
const CLEAN: CommitRecord = { state: 'clean' };
const HEADER = /^(PENDING|CLEAN) (\d{1,4}) ([0-9a-f]{8}) /;

/** The lock file of a CSV folder and prefix, which holds the commit record. */
export function lockFilePath(dir: string, prefix: string): string {
  return join(dir, `.${prefix}.lock`);
}

/** The PENDING record of a commit about to append to `csv` (and `quarantine`) from these sizes. */
export function pendingRecord(
  csv: FileIdentity,
  csvStart: number,
  quarantine: FileIdentity | null,
  quarantineStart: number,
): string {
  return framed('PENDING', [
    csv.path,
    csv.dev,
    csv.ino,
    csvStart,
    quarantine?.path ?? '',
    quarantine?.dev ?? 0,
    quarantine?.ino ?? 0,
    quarantineStart,
  ]);
}

/** `<kind> <byteLength> <crc32> <json>` and its LF: the length and CRC are of the JSON. */
function framed(kind: 'PENDING' | 'CLEAN', fields: (string | number)[]): string {
  const json = JSON.stringify(fields);
  const crc = crc32(json).toString(16).padStart(8, '0');
  return `${kind} ${Buffer.byteLength(json)} ${crc} ${json}\n`;
}

/**
 * The CLEAN record of a commit that appended `csv` [csvStart, csvEnd) (and `quarantine`), written
 * with CSV_FSYNC: a power loss that keeps this record keeps those spans whole or none of the last.
 */
export function cleanRecord(
  csv: FileIdentity,
  csvStart: number,
  csvEnd: number,
  quarantine: FileIdentity | null,
  quarantineStart: number,
  quarantineEnd: number,
): string {
  return framed('CLEAN', [
    csv.path,
    csv.dev,
    csv.ino,
    csvStart,
    csvEnd,
    quarantine?.path ?? '',
    quarantine?.dev ?? 0,
    quarantine?.ino ?? 0,
    quarantineStart,
    quarantineEnd,
  ]);
}

/** Reads the record from the first `n` bytes of `bytes` (what one read at offset 0 returned). */
export function parseCommitRecord(bytes: Buffer, n: number): CommitRecord {
  if (n === 0) return CLEAN;
  // What the committer writes, checked without allocating: this runs on every commit.
  if (n >= CLEAN_LINE.length && bytes.compare(CLEAN_LINE, 0, CLEAN_LINE.length, 0, CLEAN_LINE.length) === 0) {
    return CLEAN;
  }
  const lf = bytes.subarray(0, n).indexOf(0x0a);
  const lineEnd = lf < 0 ? n : lf;
  const line = bytes.toString('utf8', 0, lineEnd);
  // An operator's `printf CLEAN` or `echo CLEAN` (with or without the LF).
  if (line.trimEnd() === 'CLEAN') return CLEAN;
  const unreadable = (reason: string): CommitRecord => ({
    state: 'unreadable',
    text: lf < 0 ? line.trimEnd() : line,
    reason,
  });
  const header = HEADER.exec(line);
  if (header === null) {
    return unreadable(
      line.startsWith('PENDING') || line.startsWith('CLEAN ')
        ? 'no valid length and CRC-32'
        : 'neither CLEAN nor PENDING',
    );
  }
  const jsonStart = header[0].length; // ASCII: as many bytes as characters
  const jsonEnd = jsonStart + Number(header[2]);
  if (lf < 0 || jsonEnd !== lf) return unreadable('the length does not match the record');
  if (crc32(bytes.subarray(jsonStart, jsonEnd)) !== parseInt(header[3], 16)) {
    return unreadable('the CRC-32 does not match the record');
  }
  let fields: unknown;
  try {
    fields = JSON.parse(bytes.toString('utf8', jsonStart, jsonEnd));
  } catch {
    return unreadable('the record is not JSON');
  }
  if (header[1] === 'CLEAN') {
    if (!isFields(fields, 10) || fields[3] > fields[4] || fields[8] > fields[9]) {
      return unreadable('the record does not have the fields of CLEAN');
    }
    const [cPath, cDev, cIno, cStart, cEnd, kPath, kDev, kIno, kStart, kEnd] = fields;
    return {
      state: 'clean',
      csv: { path: cPath, dev: cDev, ino: cIno, start: cStart, end: cEnd },
      quarantine:
        kPath === '' ? null : { path: kPath, dev: kDev, ino: kIno, start: kStart, end: kEnd },
    };
  }
  if (!isFields(fields, 8)) return unreadable('the record does not have the fields of PENDING');
  const [csvPath, csvDev, csvIno, csvStart, qPath, qDev, qIno, qStart] = fields;
  return {
    state: 'pending',
    csv: { path: csvPath, dev: csvDev, ino: csvIno, start: csvStart },
    quarantine: qPath === '' ? null : { path: qPath, dev: qDev, ino: qIno, start: qStart },
  };
}

/**
 * Reads the record of a lock file on its own descriptor, without the lock (for /health): the
 * record is written with one pwrite, so a reader sees the old one or the new one.
 */
export function readCommitRecordFile(path: string): CommitRecord {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return CLEAN; // no commit yet
    throw err;
  }
  try {
    const bytes = Buffer.allocUnsafe(RECORD_BYTES);
    return parseCommitRecord(bytes, readSync(fd, bytes, 0, RECORD_BYTES, 0));
  } finally {
    closeSync(fd);
  }
}

/**
 * PENDING: [path, dev, ino, start] for the CSV then the quarantine file; CLEAN: [path, dev, ino,
 * start, end] for each. A path is a string (the CSV's never empty), the rest integers ≥ 0.
 */
function isFields(v: unknown, n: 8): v is [string, number, number, number, string, number, number, number];
function isFields(
  v: unknown,
  n: 10,
): v is [string, number, number, number, number, string, number, number, number, number];
function isFields(v: unknown, n: number): boolean {
  if (!Array.isArray(v) || v.length !== n) return false;
  const perFile = n / 2;
  for (let i = 0; i < n; i++) {
    const ok =
      i % perFile === 0 ? typeof v[i] === 'string' : Number.isSafeInteger(v[i]) && v[i] >= 0;
    if (!ok) return false;
  }
  return v[0] !== '';
}
