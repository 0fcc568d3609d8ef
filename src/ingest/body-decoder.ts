/**
 * Content-Encoding decoders with one push interface (SPEC §3): identity, gzip, x-gzip, deflate
 * (zlib-wrapped or raw, detected from the first two bytes), br and zstd.
 *
 * Every byte here is the client's, so each decoder bounds what a few bytes can cost (issue 13):
 * - **Windows.** A zstd frame and a brotli stream declare their window up front, and the decoder
 *   holds that much memory as output is produced (16.6 MiB for a 25-byte br body with a 16 MiB
 *   window). A window over `maxWindowBytes` is refused (413 `window_too_large`) before decoding,
 *   and the windows of all requests of a worker share one budget (503 `overloaded` beyond it), so
 *   a crowd of trickling clients cannot push the worker past pm2's `max_memory_restart`.
 * - **Work per call.** zstd is decoded by libzstd (zstd-napi's low-level context) into 64 KiB
 *   outputs, yielding to the event loop every few MiB; fzstd, used before, reserved the declared
 *   window (up to 2 GiB) and moved the whole window on every block, synchronously: a 46-byte body
 *   took 6.3 s and 2 GB. Node's zlib streams already run on the thread pool in 16 KiB outputs.
 * - **Nothing dropped.** Node's inflate and brotli streams stop at the end of the first stream and
 *   silently drop what follows; gunzip drops what follows a member when it starts with a zero
 *   byte. Each write is checked against the bytes the engine consumed (`bytesWritten`): what
 *   follows a deflate or br stream is decoded as the next stream (as gunzip does with members),
 *   and what gunzip left is 400 `corrupt_body`. libzstd decodes frame after frame itself and
 *   refuses anything else.
 *
 * zstd-napi is a Node-API binding of libzstd, built at `npm ci` (the machine has python3, make
 * and g++; see package.json's allowScripts). Node 22.15+ has zlib.createZstdDecompress with
 * ZSTD_d_windowLogMax, which could replace it once Node 20 support ends.
 */
import {
  createBrotliDecompress,
  createGunzip,
  createInflate,
  createInflateRaw,
  type BrotliDecompress,
  type Gunzip,
  type Inflate,
  type InflateRaw,
} from 'node:zlib';
import { createRequire } from 'node:module';
import { IngestError } from '../http/errors.js';

export interface BodyDecoder {
  /** Decodes a piece; returns false when the caller should wait for `onDrain` before the next. */
  write(chunk: Buffer): boolean;
  /** No more input: `onEnd` follows the last output. */
  end(): void;
  destroy(): void;
}

export interface DecoderEvents {
  onData(chunk: Buffer): void;
  onEnd(): void;
  onError(err: IngestError): void;
  onDrain(): void;
}

/** Decoder memory of all requests of one worker (MiB-sized windows add up). */
export class DecoderBudget {
  used = 0;
  /** Requests refused (503 `overloaded`) because their window did not fit, so far. */
  refusals = 0;

  constructor(readonly capacity: number) {}

  /** Takes `bytes` if they fit. */
  take(bytes: number): boolean {
    if (this.used + bytes > this.capacity) {
      this.refusals++;
      return false;
    }
    this.used += bytes;
    return true;
  }

  giveBack(bytes: number): void {
    this.used -= bytes;
  }
}

export interface DecoderLimits {
  /** Largest window a zstd frame or a brotli stream may declare. */
  maxWindowBytes: number;
  budget: DecoderBudget;
}

export const SUPPORTED_ENCODINGS = ['identity', 'gzip', 'x-gzip', 'deflate', 'br', 'zstd'];

/** Normalised encoding, or throws 415. `undefined`/empty is identity. */
export function parseContentEncoding(header: string | string[] | undefined): string {
  const raw = Array.isArray(header) ? header.join(',') : (header ?? '');
  const codings = raw
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== '' && s !== 'identity');
  if (codings.length === 0) return 'identity';
  if (codings.length > 1 || !SUPPORTED_ENCODINGS.includes(codings[0])) {
    throw new IngestError(
      'unsupported_encoding',
      `Content-Encoding "${raw}" is not supported; use identity, gzip, x-gzip, deflate, br or zstd`,
    );
  }
  return codings[0];
}

/** A decoder for a non-identity encoding. */
export function createDecoder(
  encoding: string,
  events: DecoderEvents,
  limits: DecoderLimits,
): BodyDecoder {
  if (encoding === 'zstd') return new ZstdDecoder(events, limits);
  const kind = encoding === 'br' ? 'br' : encoding === 'deflate' ? 'deflate' : 'gzip';
  return new ZlibDecoder(kind, events, limits);
}

/** What one zlib stream holds besides a brotli window: state, a 32 KiB window, output buffers. */
const ZLIB_STREAM_BYTES = 64 * 1024;
/** Input chunks queued before the caller is asked to wait (`write` returns false). */
const MAX_QUEUED = 4;

function mib(bytes: number): string {
  return `${Math.round((bytes / 1048576) * 100) / 100} MiB`;
}

function windowTooLarge(what: string, bytes: number, limits: DecoderLimits): IngestError {
  return new IngestError(
    'window_too_large',
    `the ${what} declares a ${mib(bytes)} window; MAX_DECODER_WINDOW_BYTES is ${mib(limits.maxWindowBytes)}`,
  );
}

function overBudget(limits: DecoderLimits): IngestError {
  return new IngestError(
    'overloaded',
    `the decoders of this worker hold DECODER_MEMORY_BYTES (${mib(limits.budget.capacity)}) already; retry later`,
    { retryAfter: 1 },
  );
}

function corrupt(message: string, cause?: unknown): IngestError {
  return new IngestError('corrupt_body', `the body could not be decoded: ${message}`, { cause });
}

/**
 * RFC 7932 §9.1: WBITS from a brotli stream's first byte (its low 1, 4 or 7 bits); the window is
 * 2^WBITS − 16 bytes. `null`: the large-window extension (WBITS up to 30), which Node refuses.
 */
export function brotliWindowBits(first: number): number | null {
  if ((first & 1) === 0) return 16;
  const n = (first >> 1) & 7;
  if (n !== 0) return 17 + n;
  const m = (first >> 4) & 7;
  if (m === 0) return 17;
  if (m === 1) return null;
  return 8 + m;
}

type ZlibKind = 'gzip' | 'deflate' | 'br';
type ZlibStream = Gunzip | Inflate | InflateRaw | BrotliDecompress;

/**
 * gzip, deflate and br through Node's zlib streams, one input chunk in flight at a time so that
 * the bytes each stream left unconsumed are known exactly: after a write's callback every
 * earlier chunk was consumed whole, so what is left is the tail of the chunk just written.
 */
class ZlibDecoder implements BodyDecoder {
  private stream: ZlibStream | null = null;
  /** Bytes written to the current stream. */
  private written = 0;
  private streamEnded = false;
  private afterStreamEnd: (() => void) | null = null;
  /** deflate: zlib-wrapped or raw, decided from the first stream's first two bytes. */
  private zlibWrapped: boolean | null = null;
  private head: Buffer | null = null;
  private readonly queue: Buffer[] = [];
  private writing = false;
  private inputEnded = false;
  private waitingForDrain = false;
  private failed = false;
  private finished = false;
  private charged = 0;

  constructor(
    private readonly kind: ZlibKind,
    private readonly events: DecoderEvents,
    private readonly limits: DecoderLimits,
  ) {}

  write(chunk: Buffer): boolean {
    if (this.failed || chunk.length === 0) return true;
    this.queue.push(chunk);
    this.pump();
    if (this.queue.length < MAX_QUEUED) return true;
    this.waitingForDrain = true;
    return false;
  }

  end(): void {
    this.inputEnded = true;
    this.pump();
  }

  destroy(): void {
    if (this.failed) return;
    this.failed = true;
    this.queue.length = 0;
    this.stream?.destroy();
    this.release();
  }

  private fail(err: IngestError): void {
    if (this.failed) return;
    this.destroy();
    this.events.onError(err);
  }

  private release(): void {
    this.limits.budget.giveBack(this.charged);
    this.charged = 0;
  }

  /** Reserves what the next stream will hold, beyond what this request holds already. */
  private charge(bytes: number): boolean {
    if (bytes <= this.charged) return true;
    if (!this.limits.budget.take(bytes - this.charged)) return false;
    this.charged = bytes;
    return true;
  }

  private pump(): void {
    if (this.writing || this.failed || this.afterStreamEnd !== null) return;
    let chunk = this.queue.shift();
    if (chunk === undefined) {
      if (this.waitingForDrain) {
        this.waitingForDrain = false;
        this.events.onDrain();
      }
      if (this.inputEnded) this.endInput();
      return;
    }
    if (this.stream === null) {
      if (this.head !== null) {
        chunk = Buffer.concat([this.head, chunk]);
        this.head = null;
      }
      if (
        this.kind === 'deflate' &&
        this.zlibWrapped === null &&
        chunk.length < 2 &&
        !this.inputEnded
      ) {
        this.head = chunk; // wait for the second byte
        this.pump();
        return;
      }
      if (!this.startStream(chunk)) return;
    }
    const stream = this.stream!;
    this.writing = true;
    this.written += chunk.length;
    const written = chunk;
    stream.write(chunk, () => {
      this.writing = false;
      if (this.failed || stream !== this.stream) return;
      const left = this.written - stream.bytesWritten;
      if (left > 0) this.nextStream(written.subarray(written.length - left));
      else this.pump();
    });
  }

  /** Starts a stream whose first bytes are `chunk`'s. */
  private startStream(chunk: Buffer): boolean {
    let cost = ZLIB_STREAM_BYTES;
    if (this.kind === 'br') {
      const bits = brotliWindowBits(chunk[0]);
      if (bits === null) {
        this.fail(
          new IngestError('window_too_large', 'large-window brotli streams are not supported'),
        );
        return false;
      }
      const window = 2 ** bits;
      if (window - 16 > this.limits.maxWindowBytes) {
        this.fail(windowTooLarge('br stream', window - 16, this.limits));
        return false;
      }
      cost += window;
    }
    if (!this.charge(cost)) {
      this.fail(overBudget(this.limits));
      return false;
    }
    if (this.kind === 'deflate' && this.zlibWrapped === null) {
      // RFC 1950: a zlib header is a CMF byte with method 8 and window ≤ 32 KiB, whose 16-bit
      // value with FLG is a multiple of 31; anything else is taken as raw deflate.
      this.zlibWrapped =
        chunk.length >= 2 &&
        (chunk[0] & 0x0f) === 8 &&
        chunk[0] >> 4 <= 7 &&
        ((chunk[0] << 8) | chunk[1]) % 31 === 0;
    }
    const stream: ZlibStream =
      this.kind === 'br'
        ? createBrotliDecompress()
        : this.kind === 'gzip'
          ? createGunzip()
          : this.zlibWrapped
            ? createInflate()
            : createInflateRaw();
    this.stream = stream;
    this.written = 0;
    this.streamEnded = false;
    stream.on('data', (out: Buffer) => {
      if (!this.failed) this.events.onData(out);
    });
    stream.on('end', () => {
      if (stream !== this.stream) return;
      this.streamEnded = true;
      const next = this.afterStreamEnd;
      this.afterStreamEnd = null;
      if (next !== null) next();
      else if (this.inputEnded && !this.writing && this.queue.length === 0) this.finish();
    });
    stream.on('error', (err: Error) => {
      if (stream === this.stream) this.fail(corrupt(err.message, err));
    });
    return true;
  }

  /** The current stream ended before `rest`: gunzip's leftovers are refused, others go on. */
  private nextStream(rest: Buffer): void {
    if (this.kind === 'gzip') {
      this.fail(corrupt(`${rest.length}+ bytes follow the end of the gzip data`));
      return;
    }
    const start = (): void => {
      if (this.failed) return;
      this.stream = null;
      this.queue.unshift(rest);
      this.pump();
    };
    // Its output is all emitted once it has ended; the next stream's comes after.
    if (this.streamEnded) start();
    else this.afterStreamEnd = start;
  }

  private endInput(): void {
    if (this.stream === null) {
      if (this.head !== null) {
        // One byte of deflate: raw, and surely truncated; the stream says so.
        this.queue.push(this.head);
        this.head = null;
        this.pump();
        return;
      }
      this.finish();
      return;
    }
    if (this.streamEnded) this.finish();
    else this.stream.end();
  }

  private finish(): void {
    if (this.failed || this.finished) return;
    this.finished = true;
    this.release();
    this.events.onEnd();
  }
}

/** zstd-napi's low-level binding (CommonJS, Node-API). */
interface ZstdBinding {
  DCtx: new () => {
    setParameter(param: number, value: number): void;
    decompressStream(dst: Uint8Array, src: Uint8Array): [number, number, number];
  };
  DParameter: { windowLogMax: number };
}
const zstd = createRequire(import.meta.url)('zstd-napi/binding') as ZstdBinding;

const ZSTD_OUT = 64 * 1024;
/** Output decoded in one event-loop turn before yielding (libzstd does ~1.5 GB/s here). */
const ZSTD_SLICE_BYTES = 8 << 20;
const ZSTD_MAGIC = 0xfd2fb528;

/**
 * The window a zstd frame header declares (RFC 8878 §3.1.1.1), `0` for a skippable frame, or
 * `-1` when more bytes are needed. A header that is not a frame's is left to libzstd to refuse.
 */
export function zstdFrameWindow(b: Buffer): number {
  if (b.length < 4) return -1;
  const magic = b.readUInt32LE(0);
  if ((magic & 0xfffffff0) === 0x184d2a50) return 0;
  if (magic !== ZSTD_MAGIC) return 0;
  if (b.length < 6) return -1;
  const fhd = b[4];
  const single = (fhd >> 5) & 1;
  if (!single) {
    const exponent = b[5] >> 3;
    const base = 2 ** (10 + exponent);
    return base + (base / 8) * (b[5] & 7);
  }
  const dictBytes = [0, 1, 2, 4][fhd & 3];
  const fcsFlag = fhd >> 6;
  const fcsBytes = [1, 2, 4, 8][fcsFlag];
  const at = 5 + dictBytes;
  if (b.length < at + fcsBytes) return -1;
  // Single segment: the window is the content size.
  if (fcsBytes === 1) return b[at];
  if (fcsBytes === 2) return b.readUInt16LE(at) + 256;
  if (fcsBytes === 4) return b.readUInt32LE(at);
  return Number(b.readBigUInt64LE(at));
}

class ZstdDecoder implements BodyDecoder {
  private readonly dctx = new zstd.DCtx();
  private readonly queue: Buffer[] = [];
  /** libzstd's last return: 0 at a frame's end (or before the first), else a frame is open. */
  private hint = 0;
  /** Bytes held back until a frame header is whole. */
  private stash: Buffer | null = null;
  /** libzstd may hold output of input it has consumed: ask again even without input. */
  private outputPending = false;
  private scheduled = false;
  private waitingForDrain = false;
  private inputEnded = false;
  private failed = false;
  private finished = false;
  private charged = 0;

  constructor(
    private readonly events: DecoderEvents,
    private readonly limits: DecoderLimits,
  ) {
    this.dctx.setParameter(
      zstd.DParameter.windowLogMax,
      Math.max(10, Math.floor(Math.log2(limits.maxWindowBytes))),
    );
  }

  write(chunk: Buffer): boolean {
    if (this.failed || chunk.length === 0) return true;
    this.queue.push(chunk);
    if (!this.scheduled) this.run();
    if (this.queue.length === 0) return true;
    this.waitingForDrain = true;
    return false;
  }

  end(): void {
    this.inputEnded = true;
    if (!this.scheduled) this.run();
  }

  destroy(): void {
    if (this.failed) return;
    this.failed = true;
    this.queue.length = 0;
    this.limits.budget.giveBack(this.charged);
    this.charged = 0;
  }

  private fail(err: IngestError): void {
    if (this.failed) return;
    this.destroy();
    this.events.onError(err);
  }

  /** Decodes queued input until it is used up or a slice of output is done, then yields. */
  private run(): void {
    this.scheduled = false;
    let produced = 0;
    while (!this.failed && produced < ZSTD_SLICE_BYTES) {
      let src = this.queue.shift();
      if (src === undefined) {
        if (!this.outputPending) break;
        src = Buffer.alloc(0);
      }
      if (this.stash !== null) {
        src = Buffer.concat([this.stash, src]);
        this.stash = null;
      }
      const rest = this.decode(src, ZSTD_SLICE_BYTES - produced);
      if (rest === null) return;
      produced += rest.produced;
      if (rest.left.length > 0) {
        if (rest.needHeader) this.stash = rest.left;
        else this.queue.unshift(rest.left);
      }
    }
    if (this.failed) return;
    if (this.queue.length > 0 || this.outputPending) {
      this.scheduled = true;
      setImmediate(() => this.run());
      return;
    }
    if (this.waitingForDrain) {
      this.waitingForDrain = false;
      this.events.onDrain();
    }
    if (this.inputEnded) this.finish();
  }

  /**
   * Decodes from `src` until it is used up, `budget` output bytes are produced, or a frame header
   * needs more bytes. Returns what is left, or null after a failure.
   */
  private decode(
    src: Buffer,
    budget: number,
  ): { left: Buffer; produced: number; needHeader: boolean } | null {
    let produced = 0;
    while (src.length > 0 || this.outputPending) {
      if (this.hint === 0 && src.length > 0 && !this.outputPending) {
        // A frame starts here: check and reserve its window before libzstd sees it.
        const window = zstdFrameWindow(src);
        if (window < 0) return { left: src, produced, needHeader: true };
        if (window > this.limits.maxWindowBytes) {
          this.fail(windowTooLarge('zstd frame', window, this.limits));
          return null;
        }
        if (window > this.charged) {
          if (!this.limits.budget.take(window - this.charged)) {
            this.fail(overBudget(this.limits));
            return null;
          }
          this.charged = window;
        }
      }
      const dst = Buffer.allocUnsafe(ZSTD_OUT);
      let result: [number, number, number];
      try {
        result = this.dctx.decompressStream(dst, src);
      } catch (err) {
        const message = (err as Error).message;
        this.fail(
          /too much memory/i.test(message)
            ? windowTooLarge('zstd frame', 2 ** 31, this.limits)
            : corrupt(`zstd: ${message}`, err),
        );
        return null;
      }
      const [hint, out, consumed] = result;
      this.hint = hint;
      src = src.subarray(consumed);
      // Output, and the frame not done: more may come without more input.
      this.outputPending = out > 0 && hint !== 0;
      if (out > 0) {
        produced += out;
        this.events.onData(dst.subarray(0, out));
        if (this.failed) return null;
      }
      if (out === 0 && consumed === 0) break;
      if (produced >= budget && (src.length > 0 || this.outputPending)) {
        return { left: src, produced, needHeader: false }; // yield; run() comes back
      }
    }
    return { left: src, produced, needHeader: false };
  }

  private finish(): void {
    if (this.failed || this.finished) return;
    // Flush what libzstd may still hold.
    const flushed = this.decode(Buffer.alloc(0), Number.MAX_SAFE_INTEGER);
    if (flushed === null) return;
    if (this.stash !== null || this.hint !== 0) {
      this.fail(corrupt('the zstd body ended in the middle of a frame'));
      return;
    }
    this.finished = true;
    this.limits.budget.giveBack(this.charged);
    this.charged = 0;
    this.events.onEnd();
  }
}
