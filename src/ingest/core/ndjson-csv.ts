/**
 * The NDJSON → CSV transform: a streaming, validating byte scanner (SPEC §4–5).
 *
 * Framework-free on purpose (no Nest, no Fastify): it is the product's core and is tested and
 * benchmarked on its own (test/core, bench/core.bench.ts).
 *
 * Usage:
 *   const t = new NdjsonCsvTransform({ columns, eol: 'crlf', maxLineBytes }, onInvalid);
 *   for (const chunk of body) sink(t.push(chunk));   // CSV bytes of the complete lines so far
 *   sink(t.end());                                   // the last line, if it had no LF
 *   t.valid, t.invalid, t.total
 *
 * `push` and `end` return a view of an internal buffer that stays valid only until the next call:
 * copy it (the commit buffer does) before pushing again.
 *
 * Division of labour, and why (figures in BENCHMARKS.md):
 * - Here, in JS: chunking. Complete lines inside a chunk are handed on in place; only a line that
 *   straddles two chunks is copied (into `carry`), so the scanner always sees whole lines that end
 *   with LF. The UTF-8 BOM (also split across chunks) and lines too long to keep are handled here
 *   too, and UTF-8 is checked once per chunk by the native `buffer.isUtf8` (simdutf, ~40 GB/s
 *   here): only a region that fails is validated line by line, by the kernel.
 * - In the WebAssembly kernel (kernel/scan.ts, AssemblyScript with SIMD): JSON validation, key
 *   matching, value extraction and CSV writing. A plain JS byte loop measured ~530 MB/s on the
 *   reference machine, the same loop in WebAssembly ~1.3 GB/s, and SIMD skips string contents 16
 *   bytes at a time. Keys are matched against the previous record's key at the same position,
 *   with the comma before it (16 bytes per compare), which is what taxi-like data nearly always
 *   repeats.
 */
import { isUtf8 } from 'node:buffer';
import { discard } from './discard.js';
import { KERNEL_WASM_BASE64 } from './kernel-wasm.js';
import {
  MAX_META_BYTES,
  T_FIXED,
  compileSchema,
  type ColumnSpec,
  type ColumnType,
  type CompiledSchema,
} from './schema.js';

export type InvalidReason =
  | 'invalid_json'
  | 'invalid_utf8'
  | 'not_object'
  | 'invalid_unicode'
  | 'line_too_long'
  | 'type_mismatch'
  | 'missing_value';

export interface TransformOptions {
  /**
   * The columns, in order: a field name (a top-level key, written as §5 writes it) or a column of
   * a dataset (SPEC §8: a path with a type, or a meta value). Pass the same array for every
   * request of a dataset: its compiled form is cached on it.
   */
  columns: readonly (string | ColumnSpec)[];
  /** Row terminator. */
  eol: 'crlf' | 'lf';
  /** Longest line accepted, in bytes (without LF and without a dropped CR). */
  maxLineBytes: number;
  /** The values of meta columns for this request (request_id, received_at, node). */
  meta?: RowMeta;
}

export interface RowMeta {
  requestId: string;
  /** When the request arrived: `received_at` is its UTC time to the millisecond. */
  receivedAt: Date;
  /** NODE_NAME, else the host name. */
  node: string;
}

/**
 * Receives every invalid line, in order. `raw` is a copy the callee may keep: the line as split,
 * without BOM and dropped CR, cut to `maxLineBytes` for `line_too_long` (then `lineBytes` > raw.length).
 * `column` names the column of a column-level reason (type_mismatch, missing_value, and
 * invalid_unicode).
 */
export type InvalidLineListener = (
  line: number,
  reason: InvalidReason,
  raw: Buffer,
  lineBytes: number,
  column: string | undefined,
) => void;

/** The kernel's exports (see kernel/scan.ts). */
interface Kernel {
  memory: WebAssembly.Memory;
  DYNAMIC_BASE: WebAssembly.Global;
  outLength: WebAssembly.Global;
  validCount: WebAssembly.Global;
  invalidCount: WebAssembly.Global;
  linesScanned: WebAssembly.Global;
  init(columns: number, slots: number, eolLf: number, maxLine: number): void;
  keysPtr(): number;
  fixedPtr(): number;
  floatLimitPtr(): number;
  setEntry(
    entry: number,
    keyOffset: number,
    keyLength: number,
    index: number,
    slot: number,
    child: number,
  ): void;
  setNode(node: number, first: number, count: number, lo: number, hi: number): void;
  setColumn(
    column: number,
    type: number,
    slot: number,
    flags: number,
    fixedOffset: number,
    fixedLength: number,
  ): void;
  setBounds(spanFactor: number, fixedBound: number): void;
  setLineBase(lines: number): void;
  layout(
    out: number,
    outCapacity: number,
    stack: number,
    stackCapacity: number,
    scratch: number,
    invalid: number,
    invalidCapacity: number,
  ): void;
  scan(start: number, end: number, knownUtf8: number): number;
}

const KERNEL_MODULE = new WebAssembly.Module(Buffer.from(KERNEL_WASM_BASE64, 'base64'));
const REASONS: InvalidReason[] = [
  'invalid_json', // 0 is VALID in the kernel; never reported
  'invalid_json',
  'invalid_utf8',
  'not_object',
  'invalid_unicode',
  'line_too_long',
  'type_mismatch',
  'missing_value',
];
/** The largest finite double rounds from below 2^1024 - 2^970: its 309 digits (float columns). */
const FLOAT_LIMIT = Buffer.from((2n ** 1024n - 2n ** 970n).toString(), 'latin1');
/** Meta cells live after the defaults in the kernel's fixed area (kernel/scan.ts FIXED_BYTES). */
const META_AREA = 32768;
const LF = 0x0a;
const CR = 0x0d;
const PAGE = 65536;
/**
 * Slack after each area: 16-byte loads and cell copies read up to 16 bytes past a line or cell. A
 * learned key's compare reads up to its length + 15 bytes from where it starts, so past the line
 * and beyond this slack into the next area; a key holds no LF, so it never matches there.
 */
const PAD = 64;
const INVALID_ENTRIES = 4096;
/** Regions are handed to the kernel in pieces of about this size (ending at an LF). */
const PIECE = 1 << 20;
const UTF8_BOM = [0xef, 0xbb, 0xbf];
/** The copy of a partial line starts this large and doubles as the line grows. */
const CARRY_START = 1 << 12;
/**
 * A partial line whose copy grows past this is a long line: the copy is let go of once the line
 * is scanned (and ingest-body.ts counts it against LONG_LINE_MEMORY_BYTES meanwhile).
 */
export const LONG_LINE_BYTES = 64 * 1024;

/**
 * One kernel instance with its memory laid out for regions of up to `capacity` bytes. Instances
 * are reused across transforms with the same options (one request after another in a worker), so
 * a request pays no instantiation.
 */
class KernelInstance {
  readonly k: Kernel;
  capacity = 0;
  inPtr = 0;
  outPtr = 0;
  invalidPtr = 0;
  private bytes: Uint8Array;
  private ints: Int32Array;

  /** The request whose meta values the fixed area holds. */
  private metaFor: RowMeta | undefined;

  constructor(
    readonly schema: CompiledSchema,
    readonly key: string,
    eol: 'crlf' | 'lf',
    maxLine: number,
  ) {
    this.k = new WebAssembly.Instance(KERNEL_MODULE, {
      env: {
        abort() {
          throw new Error('kernel abort');
        },
      },
    }).exports as unknown as Kernel;
    const k = this.k;
    k.init(schema.columns.length, schema.slots, eol === 'lf' ? 1 : 0, maxLine);
    this.bytes = new Uint8Array(k.memory.buffer);
    this.ints = new Int32Array(k.memory.buffer);
    this.memory().set(FLOAT_LIMIT, k.floatLimitPtr());
    let offset = 0;
    const keys = k.keysPtr();
    schema.entries.forEach((e, i) => {
      const length = e.key?.length ?? 0;
      if (e.key !== null) this.memory().set(e.key, keys + offset);
      k.setEntry(i, offset, length, e.index, e.slot, e.child);
      offset += length;
    });
    schema.nodes.forEach((n, i) => k.setNode(i, n.first, n.count, n.lo, n.hi));
    let fixed = 0;
    schema.columns.forEach((c, i) => {
      const length = c.fixed?.length ?? 0;
      if (c.fixed !== null) this.memory().set(c.fixed, k.fixedPtr() + fixed);
      k.setColumn(i, c.type, c.slot, c.flags, fixed, length);
      fixed += length;
    });
    k.setBounds(schema.spanFactor, schema.fixedBound);
    this.reserve(PIECE);
  }

  /** Writes the meta cells of `meta` (once per request and instance). */
  useMeta(meta: RowMeta | undefined): void {
    if (!this.schema.metaColumns || meta === this.metaFor) return;
    if (meta === undefined) throw new Error('this dataset has meta columns: pass options.meta');
    this.metaFor = meta;
    let offset = META_AREA;
    this.schema.columns.forEach((c, i) => {
      if (c.type !== T_FIXED) return;
      const cell = Buffer.from(csvCell(metaValue(c.meta!, meta)), 'utf8');
      if (cell.length > 2 * MAX_META_BYTES + 2) throw new Error(`meta value of ${c.name} too long`);
      this.memory().set(cell, this.k.fixedPtr() + offset);
      this.k.setColumn(i, c.type, c.slot, c.flags, offset, cell.length);
      offset += cell.length;
    });
  }

  memory(): Uint8Array {
    if (this.bytes.buffer !== this.k.memory.buffer) {
      this.bytes = new Uint8Array(this.k.memory.buffer);
      this.ints = new Int32Array(this.k.memory.buffer);
    }
    return this.bytes;
  }

  int32(): Int32Array {
    this.memory();
    return this.ints;
  }

  /** Lays memory out for regions of `size` bytes: input, output, nesting stack, scratch, invalid table. */
  reserve(size: number): void {
    if (size <= this.capacity) return;
    const c = Math.max(size, this.capacity * 2);
    const base = (this.k.DYNAMIC_BASE.value as number) >>> 0;
    const inPtr = base;
    const outPtr = inPtr + c + PAD;
    const outCap = 2 * c + PAGE;
    const stackPtr = outPtr + outCap + PAD;
    const scratchPtr = stackPtr + c + PAD;
    const invalidPtr = align(scratchPtr + c + PAD, 16);
    const end = invalidPtr + INVALID_ENTRIES * 16 + PAD;
    const pages = Math.ceil(end / PAGE) - this.k.memory.buffer.byteLength / PAGE;
    if (pages > 0) this.k.memory.grow(pages);
    this.k.layout(outPtr, outCap, stackPtr, c + PAD, scratchPtr, invalidPtr, INVALID_ENTRIES);
    this.capacity = c;
    this.inPtr = inPtr;
    this.outPtr = outPtr;
    this.invalidPtr = invalidPtr;
  }
}

/**
 * Idle kernel instances, at most one per set of options. A transform takes one only for the
 * duration of one synchronous scan and gives it back at once, so a worker needs one instance per
 * dataset whatever the number of requests in flight. Holding one per request instead kept up to
 * 64 instances of ~6 MB each (WebAssembly memory never shrinks): 64 concurrent requests took RSS
 * from 94 to 401 MB for good (issue 13, item 8). An instance that had to grow past PIECE (a line
 * longer than that) is dropped rather than pooled, so one such line does not pin its memory.
 */
const pool = new Map<string, KernelInstance>();
const POOL_MAX = 16;

function takeKernel(
  schema: CompiledSchema,
  key: string,
  eol: 'crlf' | 'lf',
  maxLine: number,
): KernelInstance {
  const idle = pool.get(key);
  if (idle !== undefined) {
    pool.delete(key);
    return idle;
  }
  return new KernelInstance(schema, key, eol, maxLine);
}

/** Compiled schemas, cached on the columns array a dataset passes with every request. */
const compiled = new WeakMap<readonly (string | ColumnSpec)[], CompiledSchema>();

function schemaOf(columns: readonly (string | ColumnSpec)[]): CompiledSchema {
  let schema = compiled.get(columns);
  if (schema === undefined) {
    const specs = columns.map((c) => (typeof c === 'string' ? { name: c } : c));
    schema = compileSchema(specs, (spec) => cellOf(spec.type ?? 'json', spec.defaultJson!));
    compiled.set(columns, schema);
  }
  return schema;
}

export class CellError extends Error {
  constructor(readonly reason: InvalidReason) {
    super(reason);
  }
}

/**
 * The cell a column of type `type` writes for the JSON value `json`, by the kernel itself (so a
 * default is written exactly as the same value in a line would be). Throws a CellError with the
 * reason when the type does not accept it.
 */
export function cellOf(type: ColumnType, json: string): Buffer {
  let reason: InvalidReason | undefined;
  const t = new NdjsonCsvTransform(
    { columns: [{ name: 'v', type }], eol: 'lf', maxLineBytes: 1 << 20 },
    (_line, r) => (reason = r),
  );
  const out = Buffer.concat([t.push(Buffer.from(`{"v":${json}}\n`)), t.end()]);
  if (reason !== undefined) throw new CellError(reason);
  if (t.valid !== 1) throw new CellError('invalid_json');
  return out.subarray(0, out.length - 1);
}

function metaValue(kind: string, meta: RowMeta): string {
  if (kind === 'request_id') return meta.requestId;
  if (kind === 'node') return meta.node;
  return meta.receivedAt.toISOString().slice(0, 23).replace('T', ' ');
}

/** RFC 4180 quoting, as the kernel does it (SPEC §5). */
export function csvCell(text: string): string {
  return /[,"\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function giveBack(kernel: KernelInstance): void {
  if (kernel.capacity <= PIECE && pool.size < POOL_MAX && !pool.has(kernel.key)) {
    pool.set(kernel.key, kernel);
  }
}

/** Idle kernel instances and their memory (for tests and `npm run bench:memory`). */
export function kernelPoolStats(): { instances: number; bytes: number } {
  let bytes = 0;
  for (const k of pool.values()) bytes += k.k.memory.buffer.byteLength;
  return { instances: pool.size, bytes };
}

function align(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

export class NdjsonCsvTransform {
  valid = 0;
  invalid = 0;
  /** Physical lines seen so far (blank ones included). */
  lines = 0;

  private readonly maxLineBytes: number;
  private readonly onInvalid: InvalidLineListener | undefined;
  private readonly schema: CompiledSchema;
  private readonly eol: 'crlf' | 'lf';
  private readonly kernelKey: string;
  private readonly meta: RowMeta | undefined;
  private ended = false;

  // Output: CSV bytes produced by the current push.
  private out: Buffer = Buffer.allocUnsafe(1 << 16);
  private outLength = 0;

  // The partial line that straddles chunks (always without its LF).
  private carry: Buffer = Buffer.allocUnsafe(CARRY_START);
  private carryLength = 0;
  /** Bytes of the current partial line, also those beyond `maxLineBytes` that were not kept. */
  private carryTotal = 0;
  private carryLastByte = 0;
  private carryPrevByte = 0;
  private carryOverflow = false;
  private carryBlank = false;

  // Body start: a UTF-8 BOM may arrive split across chunks.
  private atBodyStart = true;
  private head: Buffer | null = null;

  constructor(options: TransformOptions, onInvalid?: InvalidLineListener) {
    if (!(options.maxLineBytes > 0) || options.maxLineBytes > 2 ** 30) {
      throw new Error('maxLineBytes must be between 1 and 2^30');
    }
    this.maxLineBytes = options.maxLineBytes;
    this.onInvalid = onInvalid;
    this.schema = schemaOf(options.columns);
    this.eol = options.eol;
    this.meta = options.meta;
    this.kernelKey = `${options.eol}\u0000${options.maxLineBytes}\u0000${this.schema.key}`;
  }

  /**
   * Bytes held for the line that straddles chunks: the size of its copy's buffer. It grows with
   * the line (up to maxLineBytes + 2) and falls back to a few KiB once a line over LONG_LINE_BYTES has
   * been scanned, so what a request holds follows the line it is in (ingest-body.ts bounds the
   * long ones a worker reads at once by this).
   */
  get lineBufferBytes(): number {
    return this.carry.length;
  }

  /** Records counted so far: valid + invalid (blank lines are not records). */
  get total(): number {
    return this.valid + this.invalid;
  }

  /** Feeds the next piece of the decoded body; returns the CSV rows of the lines it completed. */
  push(chunk: Buffer): Buffer {
    if (this.ended) throw new Error('the transform has ended');
    this.outLength = 0;
    if (this.atBodyStart) {
      const start = this.takeBodyStart(chunk);
      if (start === null) return this.out.subarray(0, 0);
      chunk = start;
    }
    this.pushChunk(chunk);
    return this.out.subarray(0, this.outLength);
  }

  /** Ends the body: a last line without LF is a line. Returns its CSV row, if any. */
  end(): Buffer {
    this.outLength = 0;
    if (this.atBodyStart) {
      this.atBodyStart = false;
      // A body shorter than a BOM that is a prefix of one: ordinary bytes.
      if (this.head !== null) this.appendCarry(this.head, 0, this.head.length);
      this.head = null;
    }
    if (this.carryTotal > 0) {
      this.appendCarry(LF_BUFFER, 0, 1);
      this.finishCarriedLine();
    }
    this.ended = true;
    this.carry = discard(this.carry);
    return this.out.subarray(0, this.outLength);
  }

  /**
   * Ends the transform and frees its buffers (call it after using what `end` returned, or when
   * abandoning a body): no more pushes.
   */
  release(): void {
    this.ended = true;
    this.carry = discard(this.carry);
    this.out = discard(this.out);
    this.outLength = 0;
  }

  /** Returns the first chunk with a leading BOM removed, or null while a split BOM may still come. */
  private takeBodyStart(chunk: Buffer): Buffer | null {
    const head = this.head === null ? chunk : Buffer.concat([this.head, chunk]);
    const n = Math.min(head.length, 3);
    let prefix = true;
    for (let i = 0; i < n; i++) if (head[i] !== UTF8_BOM[i]) prefix = false;
    if (prefix && head.length < 3) {
      this.head = head;
      return null;
    }
    this.atBodyStart = false;
    this.head = null;
    return prefix ? head.subarray(3) : head;
  }

  private pushChunk(chunk: Buffer): void {
    let start = 0;
    const length = chunk.length;
    if (this.carryTotal > 0) {
      const nl = chunk.indexOf(LF);
      if (nl < 0) {
        this.appendCarry(chunk, 0, length);
        return;
      }
      this.appendCarry(chunk, 0, nl + 1);
      this.finishCarriedLine();
      start = nl + 1;
    }
    const lastNl = chunk.lastIndexOf(LF);
    if (lastNl >= start) {
      this.scanRegion(chunk, start, lastNl + 1);
      start = lastNl + 1;
    }
    if (start < length) this.appendCarry(chunk, start, length);
  }

  /** Appends bytes of the partial line, keeping at most maxLineBytes + 2 of them. */
  private appendCarry(src: Buffer, from: number, to: number): void {
    const n = to - from;
    if (n <= 0) return;
    this.carryPrevByte = n >= 2 ? src[to - 2] : this.carryLastByte;
    this.carryLastByte = src[to - 1];
    this.carryTotal += n;
    const room = this.maxLineBytes + 2 - this.carryLength; // + a CR that may be dropped + LF
    const take = n < room ? n : room > 0 ? room : 0;
    if (take > 0) {
      if (this.carryLength + take > this.carry.length) {
        let size = this.carry.length * 2;
        while (size < this.carryLength + take) size *= 2;
        const grown = Buffer.allocUnsafe(size);
        this.carry.copy(grown, 0, 0, this.carryLength);
        discard(this.carry);
        this.carry = grown;
      }
      src.copy(this.carry, this.carryLength, from, from + take);
      this.carryLength += take;
    }
    if (take < n) {
      // Bytes are dropped, so the line is too long, unless it is blank (then it is skipped like
      // any blank line, as it is when it arrives in one chunk).
      if (!this.carryOverflow) {
        this.carryOverflow = true;
        this.carryBlank = isBlank(this.carry, 0, this.carryLength);
      }
      if (this.carryBlank) this.carryBlank = isBlank(src, from + take, to);
    }
  }

  /** The carry holds a whole line ending in LF, or the head of a line too long to keep. */
  private finishCarriedLine(): void {
    const total = this.carryTotal; // includes the LF
    const kept = this.carryLength;
    const overflow = this.carryOverflow;
    const blank = this.carryBlank;
    this.carryTotal = 0;
    this.carryLength = 0;
    this.carryOverflow = false;
    const carried = this.carry;
    try {
      // Length as split: without LF and without a CR right before it.
      let lineBytes = total - 1;
      if (lineBytes > 0 && this.carryPrevByte === CR) lineBytes--;
      if (overflow || lineBytes > this.maxLineBytes) {
        // Length first, then blankness, then UTF-8: the same order as for a line inside a chunk.
        this.lines++;
        const isBlankLine = overflow ? blank : isBlank(carried, 0, kept - 1);
        if (!isBlankLine) {
          this.reportInvalid(carried, 0, this.maxLineBytes, 'line_too_long', lineBytes);
        }
        return;
      }
      this.scanRegion(carried, 0, kept);
    } finally {
      // A long line's copy is let go of once it is scanned: the next partial line starts small.
      if (carried.length > LONG_LINE_BYTES && carried === this.carry) {
        this.carry = Buffer.allocUnsafe(CARRY_START);
        discard(carried);
      }
    }
  }

  /** Scans the complete lines in buf[start, end); buf[end - 1] is LF. */
  private scanRegion(buf: Buffer, start: number, end: number): void {
    while (start < end) {
      let stop = end;
      if (end - start > PIECE) {
        // Hand the kernel pieces that end at an LF, so its memory stays bounded.
        const cut = buf.lastIndexOf(LF, start + PIECE - 1);
        if (cut >= start) {
          stop = cut + 1;
        } else {
          // One line longer than PIECE: only its length, blankness matter.
          stop = buf.indexOf(LF, start + PIECE) + 1;
          if (stop - start - 1 > this.maxLineBytes + 1) {
            this.longLine(buf, start, stop);
            start = stop;
            continue;
          }
        }
      }
      this.scanPiece(buf, start, stop);
      start = stop;
    }
  }

  /** A line (with its LF) far longer than MAX_LINE_BYTES: blank or line_too_long. */
  private longLine(buf: Buffer, start: number, stop: number): void {
    this.lines++;
    let cut = stop - 1;
    if (buf[cut - 1] === CR) cut--;
    if (!isBlank(buf, start, cut)) {
      this.reportInvalid(buf, start, start + this.maxLineBytes, 'line_too_long', cut - start);
    }
  }

  private scanPiece(buf: Buffer, start: number, end: number): void {
    if (this.ended) throw new Error('the transform has ended');
    const kernel = takeKernel(this.schema, this.kernelKey, this.eol, this.maxLineBytes);
    try {
      this.scanWith(kernel, buf, start, end);
    } finally {
      giveBack(kernel);
    }
  }

  private scanWith(kernel: KernelInstance, buf: Buffer, start: number, end: number): void {
    const length = end - start;
    kernel.reserve(length);
    const k = kernel.k;
    const inPtr = kernel.inPtr;
    kernel.memory().set(buf.subarray(start, end), inPtr);
    // One native UTF-8 check for all the lines; a region that fails is checked per line.
    const knownUtf8 = isUtf8(buf.subarray(start, end)) ? 1 : 0;
    kernel.useMeta(this.meta);
    let pos = inPtr;
    const stop = inPtr + length;
    while (pos < stop) {
      k.setLineBase(this.lines);
      const next = k.scan(pos, stop, knownUtf8) >>> 0;
      const produced = k.outLength.value as number;
      const lines = k.linesScanned.value as number;
      const invalid = k.invalidCount.value as number;
      if (produced > 0) this.appendOut(kernel.memory(), kernel.outPtr, produced);
      if (invalid > 0) {
        const ints = kernel.int32();
        for (let e = 0; e < invalid; e++) {
          const at = (kernel.invalidPtr >> 2) + e * 4;
          const from = start + (ints[at + 1] - inPtr);
          const to = start + (ints[at + 2] - inPtr);
          const code = ints[at + 3];
          const reason = REASONS[code & 0xff];
          const column = code >> 8 > 0 ? this.schema.columns[(code >> 8) - 1].name : undefined;
          const line = this.lines + ints[at] + 1;
          const shown = reason === 'line_too_long' ? from + this.maxLineBytes : to;
          this.invalid++;
          this.onInvalid?.(line, reason, Buffer.from(buf.subarray(from, shown)), to - from, column);
        }
      }
      this.lines += lines;
      this.valid += k.validCount.value as number;
      if (next === pos && lines === 0) {
        // Not even one row fit the output area: give the kernel a larger one.
        kernel.reserve(kernel.capacity * 2);
        continue;
      }
      pos = next;
    }
  }

  private appendOut(memory: Uint8Array, from: number, n: number): void {
    const need = this.outLength + n;
    if (need > this.out.length) {
      let size = this.out.length * 2;
      while (size < need) size *= 2;
      const grown = Buffer.allocUnsafe(size);
      this.out.copy(grown, 0, 0, this.outLength);
      discard(this.out);
      this.out = grown;
    }
    this.out.set(memory.subarray(from, from + n), this.outLength);
    this.outLength = need;
  }

  private reportInvalid(
    buf: Buffer,
    from: number,
    to: number,
    reason: InvalidReason,
    lineBytes: number,
  ): void {
    this.invalid++;
    this.onInvalid?.(this.lines, reason, Buffer.from(buf.subarray(from, to)), lineBytes, undefined);
  }
}

const LF_BUFFER = Buffer.from([LF]);

/** Only JSON whitespace (space, tab, CR) or LF. */
function isBlank(b: Buffer, s: number, e: number): boolean {
  for (let k = s; k < e; k++) {
    const c = b[k];
    if (c !== 0x20 && c !== 0x09 && c !== CR && c !== LF) return false;
  }
  return true;
}
