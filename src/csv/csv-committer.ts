/**
 * Whole-request commits to the day's CSV file and its quarantine file (SPEC §6), safe across
 * processes that each hold their own append descriptors on the same files.
 *
 * The commit protocol, under an exclusive lock on `${dir}/.${prefix}.lock`:
 *  1. Read the commit record at the start of the lock file (format in commit-record.ts). An
 *     unreadable one fails the commit with `commit_record_unreadable` and writes nothing: offsets
 *     guessed from a damaged record could cut into acknowledged rows. /health turns 503 on it.
 *  2. Repair: if it is PENDING (a committer died or failed half-way), truncate each file it names
 *     back to the offset it recorded. The file is found by the dev and inode recorded with it:
 *     through a descriptor this worker holds on it, else at its path, else by name in the CSV
 *     folder (rotation renames in place, `x.csv` → `x.csv.1`, so only names that extend the
 *     recorded one).
 *     A path that now names another file is left alone; if the inode is nowhere to be found, a
 *     warning says so.
 *  2b. With CSV_FSYNC, a CLEAN names the last commit's span in each file: cut what a power loss
 *     left outside it (below).
 *  3. Open or reopen the day files (a new day, or the path's inode changed after a rotation). On a
 *     new day the previous day's descriptors are let go of, the quarantine one included, which
 *     would otherwise stay open until the next invalid line.
 *  4. Record PENDING with the current size and inode of both files, then append the rows.
 *  5. On any write error or short write: truncate back, clear the record, fail (ENOSPC → 507).
 *  6. Clear the record (CLEAN; with CSV_FSYNC, naming this commit's spans) and unlock.
 *
 * The lock is an OFD lock (fcntl F_OFD_SETLK, through fs-native-extensions): it belongs to the
 * open file description, so the kernel drops it when a worker dies, even by SIGKILL, and two
 * descriptors in one process exclude each other too. fs-native-extensions was chosen over fs-ext
 * because it ships prebuilt binaries (no node-gyp at install) and has a non-blocking `tryLock`.
 * Within a process commits are also queued in JS, so only one waits on the lock at a time.
 *
 * The lock is only ever held inside one synchronous stretch of code, never across an event-loop
 * turn: a busy lock is polled with `tryLock` (every loop turn at first, then every millisecond).
 * Waiting in the kernel instead (F_OFD_SETLKW on the thread pool, `waitForLock`) hands the lock
 * to a thread whose event loop may be busy with other requests for milliseconds before it uses
 * it; under load the two workers then convoy: with it, 13 % of commits at concurrency 8 took over
 * 2.5 ms (lock wait included, csv_write_duration_seconds), up to 25 ms; polling, 3 %.
 *
 * The wait has a deadline, `lockTimeoutMs` (LOCK_TIMEOUT_MS), counted from the call to `commit`:
 * the queue in this worker and the lock are both waits for someone else's commit, and a lock held
 * by a wedged process would otherwise hang every request, the ones queued behind the first waiter
 * one deadline after another. Past it the commit fails with `lock_timeout` and has written nothing.
 * A commit whose turn comes after its deadline still polls the lock for LOCK_SPIN_MS: a long queue
 * here is no reason to fail a commit when the lock is free or about to be.
 *
 * The record is rewritten in place with pwrite: it lives in the page cache, which every process
 * shares and which survives a process crash.
 *
 * Durability with `fsync` (CSV_FSYNC=true). Rows on disk must come with a record that undoes
 * them, since the kernel may write them back before anything is synced. The CLEAN record then
 * names where the commit began and ended in each file (`CLEAN <len> <crc> <json>`), and a commit
 * reads it as step 2b: bytes past its end are cut (commits after it whose records a power loss
 * did not keep: none was answered), and a file that ends inside it goes back to where it began
 * (its CLEAN reached the disk before all its rows; not answered either). A commit whose CLEAN
 * before it is on the same CSV file and ends where it begins needs nothing more: whichever record
 * since the last sync of the lock file a power loss keeps, it cuts this commit's rows away. Any
 * other commit (the first to a file, one after a repair or a plain CLEAN, one with quarantine
 * records) fdatasyncs its PENDING before writing rows, as every commit did before: one fdatasync
 * per commit on the event loop was a third of what CSV_FSYNC cost at c8 (BENCHMARKS.md).
 *
 * A commit resolves only once a group sync has fdatasync'd the files it appended to and the lock
 * file, i.e. once its CLEAN (or a later commit's PENDING) is on disk: otherwise its PENDING could
 * stay the last durable record, and after a power loss the first commit would truncate rows that
 * were answered 200. Syncing the lock file
 * in the same round as the data files, not after them, is enough for that: from then on the lock
 * file holds CLEAN or the PENDING of a later commit, which began after this one ended and so
 * recorded an offset ≥ this commit's end (or another file's), and no repair can cut into it.
 * What a power loss during the round can leave is the tail of this commit, not yet answered, under
 * a durable CLEAN; the kernel may write CLEAN back on its own at any moment anyway, so ordering the
 * two syncs would not prevent that (only holding the lock across the sync would, at the cost of
 * the group commit). One round covers every commit that finished before it started. It holds the
 * file objects, not descriptor numbers: a descriptor closed by a rotation or a new day and reused
 * by the next open would sync the wrong file (a 200 without durability) or fail with EBADF (a 500
 * for committed rows), so a retired file is closed only when the last round that needs it is done.
 *
 * Recovery from an unreadable record. Every commit fails with 500 `commit_record_unreadable`,
 * /health answers 503 naming `commit_record`, and the log names the lock file and the record's
 * text. Nothing is written meanwhile, so the data files are at worst as the unfinished commit left
 * them. If the record still shows the files' paths and start offsets, truncate each file back to
 * its offset (`truncate -s <offset> <file>`); otherwise look at the tail of the day's CSV and
 * quarantine files (`tail -c 2000 <file> | cat -A`) and truncate away a partial last line, and the
 * rows of a request that was not answered 200 if you can tell them. Then write `CLEAN` into the
 * lock file (`printf 'CLEAN\n' > <dir>/.<prefix>.lock`) or delete it: workers follow a lock file
 * replaced or removed while its record is unreadable, and ingest and /health recover at once.
 */
import {
  closeSync,
  fstatSync,
  ftruncateSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  statSync,
  constants,
  fdatasync,
  fdatasyncSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { tryLock, unlock } from 'fs-native-extensions';
import { IngestError } from '../http/errors.js';
import {
  CLEAN_TEXT,
  RECORD_BYTES,
  cleanRecord,
  lockFilePath,
  parseCommitRecord,
  pendingRecord,
  type CommitRecord,
  type RecordedFile,
  type RecordedSpan,
} from './commit-record.js';
import { PendingBytes, writeFully } from './pending-bytes.js';

export interface CommitterOptions {
  dir: string;
  prefix: string;
  /** NODE_NAME: the day files are `${prefix}-YYYY-MM-DD.${node}.csv` (SPEC §6). */
  node?: string;
  /**
   * The header row (with its eol): written by the commit that writes the first rows of a file, so
   * a failed commit truncated back to zero takes it along (SPEC §8).
   */
  header?: Buffer;
  /** fdatasync the rows before a commit is acknowledged (group commit). */
  fsync: boolean;
  /**
   * How long a commit may wait, from the call, for its turn and the lock before it fails with
   * `lock_timeout` (LOCK_TIMEOUT_MS; default 5000).
   */
  lockTimeoutMs?: number;
  /** The clock: the day of a commit is the local date when it is committed. */
  now?: () => Date;
  /** Where an operator hears of an unreadable record or a repair that found nothing (console). */
  logger?: CommitLogger;
  /** The file system's syncs (node:fs); a test swaps them to model what a power loss keeps. */
  sync?: FileSyncCalls;
}

export interface CommitLogger {
  error(message: string): void;
  warn(message: string): void;
}

export interface FileSyncCalls {
  fdatasync(fd: number, callback: (err: NodeJS.ErrnoException | null) => void): void;
  fdatasyncSync(fd: number): void;
}

export interface CommitResult {
  csvBytes: number;
  quarantineBytes: number;
  /** Seconds spent waiting for the lock and writing (for csv_write_duration_seconds). */
  writeSeconds: number;
}

/** A commit done under the lock, and the group sync it still waits for with `fsync`. */
interface Committed {
  result: CommitResult;
  synced: Promise<void> | null;
}

/**
 * An open descriptor and the identity of the file it was opened on. Closing is deferred while
 * group syncs are queued on it, so its number cannot be reused under them.
 */
class OpenFile {
  private syncs = 0;
  private retired = false;

  constructor(
    readonly path: string,
    readonly fd: number,
    readonly dev: number,
    readonly ino: number,
  ) {}

  static open(path: string, flags: number): OpenFile {
    const fd = openSync(path, flags, 0o644);
    const st = fstatSync(fd);
    return new OpenFile(path, fd, st.dev, st.ino);
  }

  /** A group sync will fdatasync this descriptor. */
  hold(): void {
    this.syncs++;
  }

  release(): void {
    if (--this.syncs === 0 && this.retired) closeSync(this.fd);
  }

  /** Closes now, or when the last queued sync is done. */
  close(): void {
    if (this.retired) return;
    this.retired = true;
    if (this.syncs === 0) closeSync(this.fd);
  }
}

/** A record is at least this long on disk (a PENDING record with two paths fits). */
const RECORD_PAD = 1024;
const PIECE_BYTES = 1 << 20;
/** How long a busy lock is retried on every event-loop turn before polling every millisecond. */
const LOCK_SPIN_MS = 2;
const DEFAULT_LOCK_TIMEOUT_MS = 5000;
/** An unreadable record is logged again after this long, not on every failed commit. */
const REPORT_EVERY_MS = 60_000;
const { O_WRONLY, O_APPEND, O_CREAT, O_RDWR } = constants;

export function localDay(d: Date): string {
  const m = d.getMonth() + 1;
  const day = d.getDate();
  return `${d.getFullYear()}-${m < 10 ? '0' : ''}${m}-${day < 10 ? '0' : ''}${day}`;
}

export class CsvCommitter {
  /** Opened at the first commit, so an idle worker holds no descriptor open for writing. */
  private lock: OpenFile | null = null;
  private readonly lockPath: string;
  private readonly lockTimeoutMs: number;
  private readonly now: () => Date;
  private readonly logger: CommitLogger;
  private readonly fileSync: FileSyncCalls;
  private csv: OpenFile | null = null;
  private quarantine: OpenFile | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly record = Buffer.alloc(RECORD_BYTES);
  private readonly syncer: GroupSync;
  private closed = false;
  private paths: { day: string; csv: string; quarantine: string } | undefined;
  /** The unreadable record last logged, and when. */
  private reported: { text: string; at: number } | null = null;

  constructor(private readonly options: CommitterOptions) {
    mkdirSync(options.dir, { recursive: true });
    this.lockPath = lockFilePath(options.dir, options.prefix);
    this.lockTimeoutMs = options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
    this.now = options.now ?? (() => new Date());
    this.logger = options.logger ?? console;
    this.fileSync = options.sync ?? { fdatasync, fdatasyncSync };
    this.syncer = new GroupSync(this.fileSync);
  }

  /** The day's two paths, built once per day rather than per commit. */
  private pathsFor(date: Date): { csv: string; quarantine: string } {
    const day = localDay(date);
    if (this.paths?.day !== day) {
      const node = this.options.node === undefined ? '' : `.${this.options.node}`;
      const base = join(this.options.dir, `${this.options.prefix}-${day}${node}`);
      this.paths = { day, csv: `${base}.csv`, quarantine: `${base}.quarantine.ndjson` };
      // SPEC §6: a worker that commits to a new day's files lets go of the previous day's. The
      // CSV descriptor is swapped by reopenIfMoved; the quarantine one is reopened only when an
      // invalid line comes, so it is closed here.
      this.quarantine?.close();
      this.quarantine = null;
    }
    return this.paths;
  }

  /**
   * Appends all rows and quarantine records of one request, or nothing. Resolves once they are
   * in the file (and on disk with `fsync`).
   */
  commit(rows: PendingBytes, quarantine: PendingBytes): Promise<CommitResult> {
    const deadline = performance.now() + this.lockTimeoutMs;
    const run = this.queue.then(() => this.commitLocked(rows, quarantine, deadline));
    this.queue = run.catch(() => undefined);
    return run.then(async ({ result, synced }) => {
      if (synced !== null) await synced;
      return result;
    });
  }

  /** Waits for the commits queued so far and their syncs, then closes the descriptors. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue;
    await this.syncer.idle();
    for (const f of [this.csv, this.quarantine, this.lock]) f?.close();
    this.csv = this.quarantine = this.lock = null;
  }

  private async commitLocked(
    rows: PendingBytes,
    quarantine: PendingBytes,
    deadline: number,
  ): Promise<Committed> {
    if (this.closed) throw new Error('committer is closed');
    const started = process.hrtime.bigint();
    // At most twice: a second time when an operator replaced the lock file to clear the record.
    for (let attempt = 0; ; attempt++) {
      const lock = (this.lock ??= OpenFile.open(this.lockPath, O_RDWR | O_CREAT));
      if (!tryLock(lock.fd)) await this.pollLock(lock.fd, deadline);
      try {
        const record = this.readRecord(lock);
        if (record.state !== 'unreadable') {
          this.reported = null;
          if (record.state === 'pending') {
            this.repair(lock, record.csv, record.quarantine);
          } else if (record.csv !== undefined) {
            this.repairSpan(record.csv);
            if (record.quarantine) this.repairSpan(record.quarantine);
          }
          return this.append(lock, rows, quarantine, started, record);
        }
        if (attempt > 0 || !this.lockFileReplaced(lock)) {
          this.reportUnreadable(record);
          throw new IngestError('commit_record_unreadable');
        }
      } finally {
        unlock(lock.fd);
      }
      // Every worker still on the old file finds the same unreadable record there and moves on
      // too before it writes anything, so the lock keeps excluding all writers.
      lock.close();
      this.lock = null;
    }
  }

  /** Steps 3–6 of the protocol, under the lock, with the record clean (`prior`, as read). */
  private append(
    lock: OpenFile,
    rows: PendingBytes,
    quarantine: PendingBytes,
    started: bigint,
    prior: CommitRecord,
  ): Committed {
    const result: CommitResult = {
      csvBytes: rows.length,
      quarantineBytes: quarantine.length,
      writeSeconds: 0,
    };
    const paths = this.pathsFor(this.now());
    const csv = (this.csv = this.reopenIfMoved(this.csv, paths.csv));
    if (rows.length === 0 && quarantine.length === 0) return { result, synced: null };
    const q =
      quarantine.length > 0
        ? (this.quarantine = this.reopenIfMoved(this.quarantine, paths.quarantine))
        : null;
    const csvStart = fstatSync(csv.fd).size;
    const qStart = q === null ? 0 : fstatSync(q.fd).size;
    const header = this.options.header;
    this.writeRecord(lock, pendingRecord(csv, csvStart, q, qStart));
    if (this.options.fsync && !undoneByPrior(prior, csv, csvStart, q)) {
      this.fileSync.fdatasyncSync(lock.fd);
    }
    try {
      if (header !== undefined && csvStart === 0 && rows.length > 0) {
        writeFully(csv.fd, header);
        result.csvBytes += header.length;
      }
      rows.forEachPiece(PIECE_BYTES, (piece) => writeFully(csv.fd, piece));
      if (q !== null) quarantine.forEachPiece(PIECE_BYTES, (piece) => writeFully(q.fd, piece));
    } catch (err) {
      // Undo this commit ourselves; if even that fails, the record stays and the next
      // committer repairs it.
      ftruncateSync(csv.fd, csvStart);
      if (q !== null) ftruncateSync(q.fd, qStart);
      this.writeRecord(lock, CLEAN_TEXT);
      throw err;
    }
    this.writeRecord(
      lock,
      this.options.fsync
        ? cleanRecord(
            csv,
            csvStart,
            csvStart + result.csvBytes,
            q,
            qStart,
            qStart + result.quarantineBytes,
          )
        : CLEAN_TEXT,
    );
    result.writeSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    // The lock file goes with the data files: the commit is durable once its CLEAN is.
    const synced = this.options.fsync
      ? this.syncer.sync(q === null ? [csv, lock] : [csv, q, lock])
      : null;
    return { result, synced };
  }

  /**
   * Retries `tryLock` every event-loop turn for LOCK_SPIN_MS, then every 1 ms, until the deadline
   * (but for LOCK_SPIN_MS at least); then fails with `lock_timeout`.
   */
  private async pollLock(fd: number, deadline: number): Promise<void> {
    const since = performance.now();
    const until = Math.max(deadline, since + LOCK_SPIN_MS);
    for (;;) {
      const now = performance.now();
      if (now >= until) {
        throw new IngestError(
          'lock_timeout',
          `the commit lock on ${this.lockPath} was not obtained within ${this.lockTimeoutMs} ms (LOCK_TIMEOUT_MS); nothing was written`,
        );
      }
      if (now - since < LOCK_SPIN_MS) await nextTurn();
      else await sleep(Math.min(1, until - now));
      if (tryLock(fd)) return;
    }
  }

  /** The record at offset 0 of the lock file: one read, already needed to know if repair is. */
  private readRecord(lock: OpenFile): CommitRecord {
    return parseCommitRecord(this.record, readSync(lock.fd, this.record, 0, RECORD_BYTES, 0));
  }

  /**
   * Writes the commit record at offset 0 of the lock file, in one pwrite (a process that dies
   * cannot leave half of one). Only the text up to its LF is read back; the padding to
   * RECORD_PAD bytes covers what a longer earlier record left, so the file reads as what it says.
   */
  private writeRecord(lock: OpenFile, text: string): void {
    const record = this.record;
    const n = record.write(text, 0, 'utf8');
    if (n >= RECORD_BYTES) throw new Error('commit record too long');
    const padded = Math.max(n, RECORD_PAD);
    record.fill(0x20, n, padded);
    writeFully(lock.fd, record.subarray(0, padded), 0);
  }

  /** Whether the lock file's path now names another file than `lock` (or none). */
  private lockFileReplaced(lock: OpenFile): boolean {
    try {
      const st = statSync(this.lockPath);
      return st.ino !== lock.ino || st.dev !== lock.dev;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
      throw err;
    }
  }

  /** Logs an unreadable record loudly, though not on every commit it fails. */
  private reportUnreadable(record: { text: string; reason: string }): void {
    const at = performance.now();
    const last = this.reported;
    if (last !== null && last.text === record.text && at - last.at < REPORT_EVERY_MS) return;
    this.reported = { text: record.text, at };
    this.logger.error(
      `INGEST STOPPED: the commit record in ${this.lockPath} is unreadable (${record.reason}): ` +
        `${JSON.stringify(record.text)}. Every commit fails with commit_record_unreadable and ` +
        `writes nothing until it is repaired. Truncate each CSV and quarantine file it names ` +
        `back to its recorded offset, or look at the tail of the day's files and truncate a ` +
        `partial commit; then write CLEAN into the lock file (printf 'CLEAN\\n' > ${this.lockPath}) ` +
        `or delete it (docs/OPERATIONS.md, Durability).`,
    );
  }

  /** Undoes the unfinished commit a PENDING record names, then clears the record. */
  private repair(lock: OpenFile, csv: RecordedFile, quarantine: RecordedFile | null): void {
    this.truncateBack(csv);
    if (quarantine !== null) this.truncateBack(quarantine);
    this.writeRecord(lock, CLEAN_TEXT);
  }

  /**
   * Truncates the file an unfinished commit appended to back to where it began, found by its
   * identity: its path may name a new file by now (rotation), which must be left alone, and the
   * file itself may have been renamed, with the partial commit still at its end.
   */
  private truncateBack(f: RecordedFile): void {
    this.cutFile(f, (fd) => {
      if (fstatSync(fd).size > f.start) ftruncateSync(fd, f.start);
    });
  }

  /**
   * What a power loss can leave behind a CLEAN with offsets (CSV_FSYNC), which a commit may not
   * have synced its PENDING after (see undoneByPrior): bytes past the last commit's end (later
   * commits, none of them answered) go; a file that ends inside the last commit (its CLEAN reached
   * the disk before all of its rows did, so it was not answered either) goes back to where that
   * commit began. Otherwise, as always without a power loss, the file ends where the commit did.
   */
  private repairSpan(f: RecordedSpan): void {
    this.cutFile(f, (fd) => cutSpan(fd, f), false);
  }

  /**
   * Runs `cut` on the file `f` names, found by its identity: through a descriptor this worker
   * holds (the common case, checked first: no system call), at its path, or under a name that
   * extends the recorded one in the folder (rotation).
   */
  private cutFile(f: RecordedFile, cut: (fd: number) => void, warnIfLost = true): void {
    for (const held of [this.csv, this.quarantine]) {
      if (held !== null && held.dev === f.dev && held.ino === f.ino) {
        cut(held.fd);
        return;
      }
    }
    if (withSameFile(f.path, f, cut)) return;
    // Only names that extend the recorded one (`x.csv.1`, `x.csv-20300131`), never the lock or a
    // spill file: an inode number freed by a deleted file is soon reused by another, and a repair
    // must not truncate a file that merely got the same number.
    const dir = this.options.dir;
    const recorded = basename(f.path);
    for (const name of readdirSync(dir)) {
      if (!name.startsWith(recorded) || name === recorded) continue;
      const path = join(dir, name);
      let st;
      try {
        st = lstatSync(path);
      } catch {
        continue; // removed meanwhile
      }
      if (st.isFile() && st.dev === f.dev && st.ino === f.ino && withSameFile(path, f, cut)) {
        return;
      }
    }
    // A finished commit's file that is gone (deleted, or moved out of the folder) has nothing
    // of an unanswered commit to undo that anyone will read here.
    if (!warnIfLost) return;
    this.logger.warn(
      `an unfinished commit recorded in ${this.lockPath} began at byte ${f.start} of ${f.path} ` +
        `(dev ${f.dev}, inode ${f.ino}), but no file with that inode is at that path, open in ` +
        `this worker or in ${dir} as ${recorded}*: if it was moved elsewhere, truncate it to ` +
        `${f.start} bytes`,
    );
  }

  /** Returns an append descriptor on `path`, reopening when the day changed or the file moved. */
  private reopenIfMoved(current: OpenFile | null, path: string): OpenFile {
    if (current !== null && current.path === path) {
      try {
        const st = statSync(path);
        if (st.ino === current.ino && st.dev === current.dev) return current;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    current?.close();
    return OpenFile.open(path, O_WRONLY | O_APPEND | O_CREAT);
  }
}

/** Runs `cut` on `path` if it is still the file `f` names; false if it is not. */
function withSameFile(path: string, f: RecordedFile, cut: (fd: number) => void): boolean {
  let fd: number;
  try {
    fd = openSync(path, O_WRONLY);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false; // rotated away
    throw err;
  }
  try {
    const st = fstatSync(fd);
    if (st.dev !== f.dev || st.ino !== f.ino) return false;
    cut(fd);
    return true;
  } finally {
    closeSync(fd);
  }
}

/** The span rule of repairSpan on an open descriptor. Never lengthens a file. */
function cutSpan(fd: number, f: RecordedSpan): void {
  const size = fstatSync(fd).size;
  if (size > f.end) ftruncateSync(fd, f.end);
  else if (size < f.end && size > f.start) ftruncateSync(fd, f.start);
}

/**
 * Whether a power loss before this commit's PENDING reaches the disk would still undo its rows:
 * the record it replaces is a CLEAN with offsets on the same CSV file, ending where this commit
 * begins (and it writes no quarantine record). Every record since the lock file was last synced
 * then names this file at or before this point, and any of them kept by a power loss cuts the file
 * back to at most here (repairSpan; a PENDING to its start). So the PENDING needs no fdatasync of
 * its own: one per commit was a third of the CPU CSV_FSYNC costs (BENCHMARKS.md). The first commit
 * to a file (a new day, a rotation), one after a repair, a plain CLEAN, or one with quarantine
 * records still syncs it first, as before.
 */
function undoneByPrior(
  prior: CommitRecord,
  csv: OpenFile,
  csvStart: number,
  q: OpenFile | null,
): boolean {
  return (
    q === null &&
    prior.state === 'clean' &&
    prior.csv !== undefined &&
    prior.csv.dev === csv.dev &&
    prior.csv.ino === csv.ino &&
    prior.csv.end === csvStart
  );
}

/**
 * Group commit: one round of fdatasyncs covers every commit that finished before it started. A
 * caller that arrives while a round runs waits for the next one, which starts when the current
 * one ends. Each file is held from the call until its round is done.
 */
class GroupSync {
  private running: Promise<void> | null = null;
  private next: Promise<void> | null = null;
  private readonly files = new Set<OpenFile>();

  constructor(private readonly calls: FileSyncCalls) {}

  sync(files: readonly OpenFile[]): Promise<void> {
    for (const f of files) {
      if (this.files.has(f)) continue;
      f.hold();
      this.files.add(f);
    }
    // A round starts on the next turn of the event loop, not at once: the commits that finish in
    // this turn (other requests' commits, queued behind this one) join it instead of waiting for
    // the round after, so one fdatasync covers several commits.
    if (this.running === null) return (this.running = nextTurn().then(() => this.start()));
    if (this.next === null) {
      this.next = this.running.then(
        () => {
          this.next = null;
          return (this.running = this.start());
        },
        () => {
          this.next = null;
          return (this.running = this.start());
        },
      );
    }
    return this.next;
  }

  /** Resolves when no round is running or queued (whether they succeed or not). */
  async idle(): Promise<void> {
    await (this.next ?? this.running)?.catch(() => undefined);
  }

  private async start(): Promise<void> {
    const files = [...this.files];
    this.files.clear();
    try {
      // allSettled: a descriptor is released only once its own fdatasync has returned.
      const results = await Promise.allSettled(
        files.map(
          (f) =>
            new Promise<void>((resolve, reject) =>
              this.calls.fdatasync(f.fd, (err) => (err ? reject(err) : resolve())),
            ),
        ),
      );
      const failed = results.find((r) => r.status === 'rejected');
      if (failed !== undefined) throw failed.reason;
    } finally {
      for (const f of files) f.release();
      if (this.next === null) this.running = null;
    }
  }
}
