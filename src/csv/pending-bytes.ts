/**
 * Bytes of one request waiting for its commit. Up to `threshold` bytes stay in memory; beyond it
 * everything goes to an anonymous temporary file in the CSV folder (created, then unlinked at
 * once, so a crash leaves nothing behind), which keeps a worker's memory bounded whatever the body
 * size (SPEC §6).
 *
 * Appends are synchronous on purpose: they are called from the body's data handler, and a
 * page-cache write of one chunk (≤ 64 KiB) costs tens of microseconds, less than the promise
 * round trip that an async write would add per chunk.
 */
import { discard } from '../ingest/core/discard.js';
import { closeSync, openSync, readSync, unlinkSync, writeSync, constants } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

/**
 * First buffer size: the rows of a typical request (51 KB for the 584 KB reference body) fit
 * without growing the buffer, which would cost an allocation and a copy per doubling.
 */
const INITIAL = 64 * 1024;

export class PendingBytes {
  private buffer: Buffer | null = null;
  private used = 0;
  private spillFd = -1;
  private spilled = 0;

  constructor(
    private readonly dir: string,
    private readonly threshold: number,
  ) {}

  /** Total bytes held. */
  get length(): number {
    return this.used + this.spilled;
  }

  get isSpilled(): boolean {
    return this.spillFd >= 0;
  }

  append(bytes: Uint8Array): void {
    const n = bytes.length;
    if (n === 0) return;
    if (this.spillFd < 0 && this.used + n <= this.threshold) {
      this.ensure(this.used + n);
      this.buffer!.set(bytes, this.used);
      this.used += n;
      return;
    }
    if (this.spillFd < 0) this.openSpill();
    if (this.used > 0) {
      writeFully(this.spillFd, this.buffer!.subarray(0, this.used));
      this.spilled += this.used;
      this.used = 0;
    }
    this.buffer = null;
    writeFully(this.spillFd, bytes);
    this.spilled += n;
  }

  /**
   * Calls `write` with the held bytes in order, in pieces of at most `pieceBytes`; the pieces
   * are only valid during the call.
   */
  forEachPiece(pieceBytes: number, write: (piece: Buffer) => void): void {
    if (this.spillFd >= 0) {
      const piece = Buffer.allocUnsafe(Math.min(pieceBytes, this.spilled));
      let offset = 0;
      while (offset < this.spilled) {
        const n = readSync(this.spillFd, piece, 0, Math.min(piece.length, this.spilled - offset), offset);
        if (n <= 0) throw new Error('spill file ended early');
        write(piece.subarray(0, n));
        offset += n;
      }
    } else if (this.used > 0) {
      write(this.buffer!.subarray(0, this.used));
    }
  }

  /** Frees the memory and the temporary file. Safe to call twice. */
  dispose(): void {
    // Freed at the next scavenge, not the next full GC.
    if (this.buffer !== null) discard(this.buffer);
    this.buffer = null;
    this.used = 0;
    if (this.spillFd >= 0) {
      closeSync(this.spillFd);
      this.spillFd = -1;
    }
    this.spilled = 0;
  }

  private ensure(size: number): void {
    if (this.buffer !== null && this.buffer.length >= size) return;
    let capacity = this.buffer === null ? INITIAL : this.buffer.length * 2;
    while (capacity < size) capacity *= 2;
    const grown = Buffer.allocUnsafe(Math.min(capacity, Math.max(size, this.threshold)));
    if (this.buffer !== null) this.buffer.copy(grown, 0, 0, this.used);
    this.buffer = grown;
  }

  private openSpill(): void {
    const path = join(this.dir, `.spill-${process.pid}-${randomBytes(6).toString('hex')}.tmp`);
    const { O_RDWR, O_CREAT, O_EXCL } = constants;
    this.spillFd = openSync(path, O_RDWR | O_CREAT | O_EXCL, 0o600);
    unlinkSync(path);
  }
}

/** writeSync until every byte is written (a short write on a regular file is retried once more). */
export function writeFully(fd: number, bytes: Uint8Array, position?: number): void {
  let done = 0;
  while (done < bytes.length) {
    const n = writeSync(
      fd,
      bytes,
      done,
      bytes.length - done,
      position === undefined ? null : position + done,
    );
    if (n <= 0) throw Object.assign(new Error('write returned 0'), { code: 'EIO' });
    done += n;
  }
}
