/**
 * The NDJSON → CSV transform: a streaming, validating byte scanner.
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
 * How it stays fast (figures in BENCHMARKS.md):
 * - UTF-8 is validated by the native `buffer.isUtf8` (simdutf) once per chunk over the region of
 *   complete lines; only a region that fails is re-checked line by line to find the culprit.
 * - Complete lines inside a chunk are scanned in place; only a line that straddles two chunks is
 *   copied (into `carry`). The scanner therefore always sees a whole line that ends with LF, and
 *   the LF itself is the sentinel that stops every inner loop: no bounds checks, no resumable state.
 * - Inner loops are table-driven (`STRING_CLASS`, `NUMBER_CLASS`) over a `Uint8Array`.
 * - Keys are matched against a per-position prediction of the previous record's key order (the
 *   "shape"), compared four bytes at a time through a DataView; on a miss the key is scanned and
 *   looked up normally, and the shape learns it.
 * - Kept values are copied once, from the input straight into the output buffer.
 */
import { isUtf8 } from 'node:buffer';

export type InvalidReason =
  'invalid_json' | 'invalid_utf8' | 'not_object' | 'invalid_unicode' | 'line_too_long';

export interface TransformOptions {
  /** Top-level fields kept, in column order. */
  columns: readonly string[];
  /** Row terminator. */
  eol: 'crlf' | 'lf';
  /** Longest line accepted, in bytes (without LF and without a dropped CR). */
  maxLineBytes: number;
}

/**
 * Receives every invalid line, in order. `raw` is a copy the callee may keep: the line as split,
 * without BOM and dropped CR, cut to `maxLineBytes` for `line_too_long` (then `lineBytes` > raw.length).
 */
export type InvalidLineListener = (
  line: number,
  reason: InvalidReason,
  raw: Buffer,
  lineBytes: number,
) => void;

const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const TAB = 0x09;
const QUOTE = 0x22;
const COMMA = 0x2c;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;

/** Inside a JSON string: 0 ordinary byte, 1 `"`, 2 `\`, 3 control character, 4 `,` (needs CSV quoting). */
const STRING_CLASS = new Uint8Array(256);
for (let b = 0; b < 0x20; b++) STRING_CLASS[b] = 3;
STRING_CLASS[QUOTE] = 1;
STRING_CLASS[BACKSLASH] = 2;
STRING_CLASS[COMMA] = 4;

/** 1 for the digits 0-9. */
const DIGIT = new Uint8Array(256);
for (let b = 0x30; b <= 0x39; b++) DIGIT[b] = 1;

/** 1 for JSON whitespace that can appear inside a line (LF ends the line instead). */
const WS = new Uint8Array(256);
WS[SPACE] = 1;
WS[TAB] = 1;
WS[CR] = 1;

/** Hex digit values, 255 for non-hex. */
const HEX = new Uint8Array(256).fill(255);
for (let i = 0; i < 10; i++) HEX[0x30 + i] = i;
for (let i = 0; i < 6; i++) {
  HEX[0x41 + i] = 10 + i;
  HEX[0x61 + i] = 10 + i;
}

/** Simple escapes: the byte after `\` → the byte it stands for (0 = not a simple escape). */
const SIMPLE_ESCAPE = new Uint8Array(256);
SIMPLE_ESCAPE[QUOTE] = QUOTE;
SIMPLE_ESCAPE[BACKSLASH] = BACKSLASH;
SIMPLE_ESCAPE[0x2f] = 0x2f; // '/'
SIMPLE_ESCAPE[0x62] = 0x08; // 'b'
SIMPLE_ESCAPE[0x66] = 0x0c; // 'f'
SIMPLE_ESCAPE[0x6e] = LF; // 'n'
SIMPLE_ESCAPE[0x72] = CR; // 'r'
SIMPLE_ESCAPE[0x74] = TAB; // 't'

// Kinds of a kept cell, recorded while the line is validated and written once it is valid.
const CELL_EMPTY = 0; // missing or null
const CELL_RAW = 1; // number, true, false: source text, never needs quoting
const CELL_PLAIN = 2; // string without escapes: the bytes between the quotes
const CELL_PLAIN_QUOTED = 3; // same, contains a comma
const CELL_ESCAPED = 4; // string with escapes: unescaped when written
const CELL_NESTED = 5; // object or array: source text, quoted if it needs to be

// Results of scanLine besides an end position.
const BLANK = -1;
const BAD_JSON = -2;
const NOT_OBJECT = -3;

const UTF8_BOM_0 = 0xef;
const UTF8_BOM_1 = 0xbb;
const UTF8_BOM_2 = 0xbf;

/** A key the shape has seen: its bytes as a `"`-terminated string, as little-endian words. */
interface KnownKey {
  /** Bytes of the key including the closing quote (the opening one is not compared). */
  bytes: Uint8Array;
  /** `bytes` as 32-bit little-endian words, the last one padded; see `matchKnownKey`. */
  words: Uint32Array;
  /** Mask for the last word. */
  lastMask: number;
  /** Column index or -1. */
  column: number;
  /** `bytes` ends with the colon that followed the key. */
  withColon: boolean;
}

/** At most this many key positions per record are predicted; records with more keys still work. */
const SHAPE_SLOTS = 64;

export class NdjsonCsvTransform {
  valid = 0;
  invalid = 0;
  /** Physical lines seen so far (blank ones included). */
  lines = 0;

  private readonly columnNames: Buffer[];
  private readonly columnCount: number;
  private readonly eol: Buffer;
  private readonly maxLineBytes: number;
  private readonly onInvalid: InvalidLineListener | undefined;

  // Per-line cell spans, reset at every line.
  private readonly cellKind: Uint8Array;
  private readonly cellStart: Int32Array;
  private readonly cellEnd: Int32Array;

  // Output: CSV bytes produced by the current push.
  private out: Buffer = Buffer.allocUnsafe(1 << 16);
  private outLength = 0;

  // The partial line that straddles chunks (always without its LF).
  private carry: Buffer = Buffer.allocUnsafe(1 << 12);
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

  // Nesting stack for values inside the top-level object: 1 = object, 2 = array.
  private stack = new Uint8Array(256);

  // Scratch for unescaping strings.
  private scratch: Buffer = Buffer.allocUnsafe(1 << 12);

  // Key scan results.
  private stringHasEscape = false;
  private stringHasComma = false;

  // The shape: the key seen at each position of the previous record.
  private readonly shape: (KnownKey | undefined)[] = new Array<KnownKey | undefined>(SHAPE_SLOTS);
  private view: DataView = new DataView(new ArrayBuffer(0));
  private viewOf: Uint8Array | null = null;

  private unicodeError = false;

  constructor(options: TransformOptions, onInvalid?: InvalidLineListener) {
    if (options.columns.length === 0) throw new Error('at least one column is required');
    if (!(options.maxLineBytes > 0)) throw new Error('maxLineBytes must be positive');
    this.columnNames = options.columns.map((c) => Buffer.from(c, 'utf8'));
    this.columnCount = options.columns.length;
    this.eol = Buffer.from(options.eol === 'lf' ? '\n' : '\r\n', 'latin1');
    this.maxLineBytes = options.maxLineBytes;
    this.onInvalid = onInvalid;
    this.cellKind = new Uint8Array(this.columnCount);
    this.cellStart = new Int32Array(this.columnCount);
    this.cellEnd = new Int32Array(this.columnCount);
  }

  /** Records counted so far: valid + invalid (blank lines are not records). */
  get total(): number {
    return this.valid + this.invalid;
  }

  /** Feeds the next piece of the decoded body; returns the CSV rows of the lines it completed. */
  push(chunk: Buffer): Buffer {
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
    return this.out.subarray(0, this.outLength);
  }

  /** Returns the first chunk with a leading BOM removed, or null while a split BOM may still come. */
  private takeBodyStart(chunk: Buffer): Buffer | null {
    const head = this.head === null ? chunk : Buffer.concat([this.head, chunk]);
    const n = head.length;
    const prefix =
      (n < 1 || head[0] === UTF8_BOM_0) &&
      (n < 2 || head[1] === UTF8_BOM_1) &&
      (n < 3 || head[2] === UTF8_BOM_2);
    if (prefix && n < 3) {
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
      // One native UTF-8 check for all complete lines; a region that fails is checked per line.
      const regionIsUtf8 = isUtf8(chunk.subarray(start, lastNl + 1));
      this.scanRegion(chunk, start, lastNl + 1, regionIsUtf8);
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
    if (!isUtf8(carried.subarray(0, kept - 1))) {
      this.lines++;
      this.reportInvalid(carried, 0, lineBytes, 'invalid_utf8', lineBytes);
      return;
    }
    this.scanRegion(carried, 0, kept, true);
  }

  /**
   * Scans the complete lines in buf[start, end); buf[end - 1] is LF.
   * With `knownUtf8`, the whole region is valid UTF-8.
   */
  private scanRegion(buf: Buffer, start: number, end: number, knownUtf8: boolean): void {
    const maxLine = this.maxLineBytes;
    let pos = start;
    while (pos < end) {
      this.lines++;
      let lineEnd: number;
      if (!knownUtf8) {
        lineEnd = buf.indexOf(LF, pos);
        const cut = lineEnd > pos && buf[lineEnd - 1] === CR ? lineEnd - 1 : lineEnd;
        if (cut - pos > maxLine) {
          if (!isBlank(buf, pos, cut)) {
            this.reportInvalid(buf, pos, pos + maxLine, 'line_too_long', cut - pos);
          }
          pos = lineEnd + 1;
          continue;
        }
        if (!isUtf8(buf.subarray(pos, cut))) {
          this.reportInvalid(buf, pos, cut, 'invalid_utf8', cut - pos);
          pos = lineEnd + 1;
          continue;
        }
      }
      const outMark = this.outLength;
      const r = this.scanLine(buf, pos);
      if (r >= 0) {
        // r is the index of the LF that ends a valid object line.
        const cut = buf[r - 1] === CR ? r - 1 : r;
        if (cut - pos > maxLine) {
          this.outLength = outMark;
          this.reportInvalid(buf, pos, pos + maxLine, 'line_too_long', cut - pos);
        } else if (this.writeRow(buf)) {
          this.valid++;
        } else {
          this.outLength = outMark;
          this.reportInvalid(buf, pos, cut, 'invalid_unicode', cut - pos);
        }
        pos = r + 1;
        continue;
      }
      if (r === BLANK) {
        // Blank lines are skipped and not counted; scanLine does not report where they end.
        pos = buf.indexOf(LF, pos) + 1;
        continue;
      }
      lineEnd = buf.indexOf(LF, pos);
      const cut = lineEnd > pos && buf[lineEnd - 1] === CR ? lineEnd - 1 : lineEnd;
      if (cut - pos > maxLine) {
        this.reportInvalid(buf, pos, pos + maxLine, 'line_too_long', cut - pos);
      } else {
        this.reportInvalid(
          buf,
          pos,
          cut,
          r === NOT_OBJECT ? 'not_object' : 'invalid_json',
          cut - pos,
        );
      }
      pos = lineEnd + 1;
    }
  }

  private reportInvalid(
    buf: Buffer,
    from: number,
    to: number,
    reason: InvalidReason,
    lineBytes: number,
  ): void {
    this.invalid++;
    if (this.onInvalid !== undefined) {
      this.onInvalid(this.lines, reason, Buffer.from(buf.subarray(from, to)), lineBytes);
    }
  }

  /**
   * Validates the line at buf[pos...] (it ends with LF). Returns the index of its LF when the line
   * is one JSON object (and records the kept cells), or BLANK, BAD_JSON or NOT_OBJECT.
   */
  private scanLine(b: Buffer, pos: number): number {
    let i = pos;
    while (WS[b[i]] === 1) i++;
    let c = b[i];
    if (c === LF) return BLANK;
    if (c !== LBRACE) {
      i = this.scanValue(b, i);
      if (i < 0) return BAD_JSON;
      while (WS[b[i]] === 1) i++;
      return b[i] === LF ? NOT_OBJECT : BAD_JSON;
    }
    const kinds = this.cellKind;
    kinds.fill(CELL_EMPTY);
    i++;
    while (WS[b[i]] === 1) i++;
    if (b[i] === RBRACE) {
      i++;
    } else {
      if (b !== this.viewOf) {
        this.view = new DataView(b.buffer, b.byteOffset, b.byteLength);
        this.viewOf = b;
      }
      let slot = 0;
      for (;;) {
        if (b[i] !== QUOTE) return BAD_JSON;
        i++;
        // Key: try the key that stood at this position in the previous record. A learned key
        // includes the colon after it when there was no whitespace in between.
        let column: number;
        const predicted = slot < SHAPE_SLOTS ? this.shape[slot] : undefined;
        if (predicted !== undefined && this.matchKnownKey(b, i, predicted)) {
          i += predicted.bytes.length;
          column = predicted.column;
          if (!predicted.withColon) {
            while (WS[b[i]] === 1) i++;
            if (b[i] !== COLON) return BAD_JSON;
            i++;
          }
        } else {
          const keyStart = i;
          i = this.scanString(b, i);
          if (i < 0) return BAD_JSON;
          column = this.keyColumn(b, keyStart, i - 1);
          if (slot < SHAPE_SLOTS && !this.stringHasEscape) {
            this.learnKey(b, keyStart, i, column, slot);
          }
          while (WS[b[i]] === 1) i++;
          if (b[i] !== COLON) return BAD_JSON;
          i++;
        }
        slot++;
        if (WS[b[i]] === 1) while (WS[b[i]] === 1) i++;
        // Value.
        const valueStart = i;
        c = b[i];
        if (c === QUOTE) {
          i = this.scanString(b, i + 1);
          if (i < 0) return BAD_JSON;
          if (column >= 0) {
            this.cellStart[column] = valueStart + 1;
            this.cellEnd[column] = i - 1;
            kinds[column] = this.stringHasEscape
              ? CELL_ESCAPED
              : this.stringHasComma
                ? CELL_PLAIN_QUOTED
                : CELL_PLAIN;
          }
        } else if (c === LBRACE || c === LBRACKET) {
          i = this.scanValue(b, i);
          if (i < 0) return BAD_JSON;
          if (column >= 0) {
            this.cellStart[column] = valueStart;
            this.cellEnd[column] = i;
            kinds[column] = CELL_NESTED;
          }
        } else {
          i = this.scanScalar(b, i);
          if (i < 0) return BAD_JSON;
          if (column >= 0) {
            this.cellStart[column] = valueStart;
            this.cellEnd[column] = i;
            kinds[column] = c === 0x6e /* null */ ? CELL_EMPTY : CELL_RAW;
          }
        }
        c = b[i];
        if (WS[c] === 1) {
          while (WS[b[i]] === 1) i++;
          c = b[i];
        }
        if (c === COMMA) {
          i++;
          if (WS[b[i]] === 1) while (WS[b[i]] === 1) i++;
          continue;
        }
        if (c === RBRACE) {
          i++;
          break;
        }
        return BAD_JSON;
      }
    }
    while (WS[b[i]] === 1) i++;
    return b[i] === LF ? i : BAD_JSON;
  }

  /**
   * Scans a string whose opening quote is at i - 1. Returns the index after the closing quote, or
   * -1. Sets stringHasEscape (any escape seen) and stringHasComma.
   */
  private scanString(b: Buffer, i: number): number {
    let escaped = false;
    let comma = false;
    for (;;) {
      let cls = STRING_CLASS[b[i]];
      while (cls === 0) cls = STRING_CLASS[b[++i]];
      if (cls === 1) break;
      if (cls === 4) {
        comma = true;
        i++;
        continue;
      }
      if (cls === 3) return -1; // control character (LF included: the line ends inside a string)
      // Backslash.
      escaped = true;
      const e = b[i + 1];
      if (SIMPLE_ESCAPE[e] !== 0) {
        i += 2;
        continue;
      }
      if (e !== 0x75 /* u */) return -1;
      if ((HEX[b[i + 2]] | HEX[b[i + 3]] | HEX[b[i + 4]] | HEX[b[i + 5]]) === 255) return -1;
      i += 6;
    }
    this.stringHasEscape = escaped;
    this.stringHasComma = comma;
    return i + 1;
  }

  /** Scans a number, true, false or null. Returns the index after it, or -1. */
  private scanScalar(b: Buffer, i: number): number {
    const c = b[i];
    if (c === 0x74) {
      return b[i + 1] === 0x72 && b[i + 2] === 0x75 && b[i + 3] === 0x65 ? i + 4 : -1;
    }
    if (c === 0x66) {
      return b[i + 1] === 0x61 && b[i + 2] === 0x6c && b[i + 3] === 0x73 && b[i + 4] === 0x65
        ? i + 5
        : -1;
    }
    if (c === 0x6e) {
      return b[i + 1] === 0x75 && b[i + 2] === 0x6c && b[i + 3] === 0x6c ? i + 4 : -1;
    }
    // Number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
    if (c === 0x2d) i++;
    const first = b[i];
    if (first === 0x30) {
      i++;
    } else if (DIGIT[first] === 1) {
      i++;
      while (DIGIT[b[i]] === 1) i++;
    } else {
      return -1;
    }
    if (b[i] === 0x2e) {
      i++;
      if (DIGIT[b[i]] !== 1) return -1;
      i++;
      while (DIGIT[b[i]] === 1) i++;
    }
    const e = b[i];
    if (e === 0x65 || e === 0x45) {
      i++;
      const s = b[i];
      if (s === 0x2b || s === 0x2d) i++;
      if (DIGIT[b[i]] !== 1) return -1;
      i++;
      while (DIGIT[b[i]] === 1) i++;
    }
    return i;
  }

  /** Scans any JSON value (nesting handled with an explicit stack). Returns the index after it, or -1. */
  private scanValue(b: Buffer, i: number): number {
    let depth = 0;
    let stack = this.stack;
    for (;;) {
      // Expect a value at i.
      let c = b[i];
      if (c === QUOTE) {
        i = this.scanString(b, i + 1);
        if (i < 0) return -1;
      } else if (c === LBRACE || c === LBRACKET) {
        if (depth === stack.length) {
          const grown = new Uint8Array(stack.length * 2);
          grown.set(stack);
          this.stack = stack = grown;
        }
        i++;
        while (WS[b[i]] === 1) i++;
        if (c === LBRACE) {
          if (b[i] === RBRACE) {
            i++;
          } else {
            stack[depth++] = 1;
            i = this.scanMemberKey(b, i);
            if (i < 0) return -1;
            continue;
          }
        } else if (b[i] === RBRACKET) {
          i++;
        } else {
          stack[depth++] = 2;
          continue;
        }
      } else {
        i = this.scanScalar(b, i);
        if (i < 0) return -1;
      }
      // After a value: close containers or go on to the next element.
      for (;;) {
        if (depth === 0) return i;
        while (WS[b[i]] === 1) i++;
        c = b[i];
        const inObject = stack[depth - 1] === 1;
        if (c === COMMA) {
          i++;
          while (WS[b[i]] === 1) i++;
          if (inObject) {
            i = this.scanMemberKey(b, i);
            if (i < 0) return -1;
          }
          break;
        }
        if (c === (inObject ? RBRACE : RBRACKET)) {
          i++;
          depth--;
          continue;
        }
        return -1;
      }
    }
  }

  /** Scans `"key" :` and the whitespace after it. Returns the index of the value, or -1. */
  private scanMemberKey(b: Buffer, i: number): number {
    if (b[i] !== QUOTE) return -1;
    i = this.scanString(b, i + 1);
    if (i < 0) return -1;
    while (WS[b[i]] === 1) i++;
    if (b[i] !== COLON) return -1;
    i++;
    while (WS[b[i]] === 1) i++;
    return i;
  }

  /** Compares the input at i with a known key (closing quote included), four bytes at a time. */
  private matchKnownKey(b: Buffer, i: number, key: KnownKey): boolean {
    const words = key.words;
    const n = words.length - 1;
    const bytes = key.bytes;
    // Never read past the line: the key's bytes end with a quote, and the line with LF, so a
    // mismatch is found before the end; but the word reads need the room, so check it once.
    if (i + bytes.length + 3 > b.length) return this.matchKnownKeyBytes(b, i, bytes);
    const view = this.view;
    let k = 0;
    for (; k < n; k++) {
      if (view.getUint32(i + 4 * k, true) !== words[k]) return false;
    }
    return (view.getUint32(i + 4 * n, true) & key.lastMask) >>> 0 === words[n];
  }

  private matchKnownKeyBytes(b: Buffer, i: number, bytes: Uint8Array): boolean {
    for (let k = 0; k < bytes.length; k++) if (b[i + k] !== bytes[k]) return false;
    return true;
  }

  /** Remembers the unescaped key b[start, end) (end is after its closing quote) at a shape slot. */
  private learnKey(b: Buffer, start: number, end: number, column: number, slot: number): void {
    const withColon = b[end] === COLON;
    if (withColon) end++;
    const bytes = new Uint8Array(end - start);
    bytes.set(b.subarray(start, end));
    const wordCount = Math.ceil(bytes.length / 4);
    const padded = new Uint8Array(wordCount * 4);
    padded.set(bytes);
    const words = new Uint32Array(wordCount);
    const dv = new DataView(padded.buffer);
    for (let k = 0; k < wordCount; k++) words[k] = dv.getUint32(4 * k, true);
    const tail = bytes.length - 4 * (wordCount - 1); // 1..4 significant bytes in the last word
    const lastMask = tail === 4 ? 0xffffffff : (1 << (8 * tail)) - 1;
    words[wordCount - 1] = (words[wordCount - 1] & lastMask) >>> 0;
    this.shape[slot] = { bytes, words, lastMask, column, withColon };
  }

  /** Column index of the key b[start, end) (raw bytes between the quotes), or -1. */
  private keyColumn(b: Buffer, start: number, end: number): number {
    let key: Buffer = b;
    if (this.stringHasEscape) {
      const n = this.unescapeInto(b, start, end, false);
      if (n < 0) return -1; // a lone surrogate cannot equal a (valid UTF-8) column name
      key = this.scratch;
      start = 0;
      end = n;
    }
    const length = end - start;
    const names = this.columnNames;
    // Last column with this name wins if a name were listed twice; config validation forbids it.
    for (let c = 0; c < this.columnCount; c++) {
      const name = names[c];
      if (name.length !== length) continue;
      let k = 0;
      while (k < length && key[start + k] === name[k]) k++;
      if (k === length) return c;
    }
    return -1;
  }

  /**
   * Unescapes the string content b[start, end) into `scratch`. Returns its length, or -1 when an
   * escape yields a lone surrogate (and `strict`) — such text cannot be written as UTF-8.
   */
  private unescapeInto(b: Buffer, start: number, end: number, strict: boolean): number {
    if (this.scratch.length < (end - start) * 2) {
      this.scratch = Buffer.allocUnsafe((end - start) * 2);
    }
    const s = this.scratch;
    let n = 0;
    let i = start;
    while (i < end) {
      const c = b[i];
      if (c !== BACKSLASH) {
        s[n++] = c;
        i++;
        continue;
      }
      const e = b[i + 1];
      if (e !== 0x75) {
        s[n++] = SIMPLE_ESCAPE[e];
        i += 2;
        continue;
      }
      let cp = readHex4(b, i + 2);
      i += 6;
      if (cp >= 0xd800 && cp <= 0xdbff) {
        if (b[i] === BACKSLASH && b[i + 1] === 0x75) {
          const low = readHex4(b, i + 2);
          if (low >= 0xdc00 && low <= 0xdfff) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
            i += 6;
          } else if (strict) {
            return -1;
          }
        } else if (strict) {
          return -1;
        }
      } else if (cp >= 0xdc00 && cp <= 0xdfff && strict) {
        return -1;
      }
      n = writeUtf8(s, n, cp);
    }
    return n;
  }

  /** Writes the row of the current line. Returns false when a kept string is a lone surrogate. */
  private writeRow(b: Buffer): boolean {
    const count = this.columnCount;
    const kinds = this.cellKind;
    const starts = this.cellStart;
    const ends = this.cellEnd;
    // Worst case: every byte a doubled quote, plus two quotes and a comma per cell.
    let need = this.eol.length;
    for (let c = 0; c < count; c++) {
      if (kinds[c] !== CELL_EMPTY) need += 2 * (ends[c] - starts[c]) + 3;
      else need += 1;
    }
    this.reserve(need);
    const out = this.out;
    let o = this.outLength;
    for (let c = 0; c < count; c++) {
      if (c > 0) out[o++] = COMMA;
      const kind = kinds[c];
      if (kind === CELL_EMPTY) continue;
      const s = starts[c];
      const e = ends[c];
      if (kind === CELL_RAW || kind === CELL_PLAIN) {
        o = copyBytes(b, s, e, out, o);
      } else if (kind === CELL_PLAIN_QUOTED) {
        out[o++] = QUOTE;
        o = copyBytes(b, s, e, out, o);
        out[o++] = QUOTE;
      } else if (kind === CELL_NESTED) {
        o = writeQuotedIfNeeded(b, s, e, out, o);
      } else {
        const n = this.unescapeInto(b, s, e, true);
        if (n < 0) return false;
        o = writeQuotedIfNeeded(this.scratch, 0, n, out, o);
      }
    }
    const eol = this.eol;
    for (let k = 0; k < eol.length; k++) out[o++] = eol[k];
    this.outLength = o;
    return true;
  }

  private reserve(extra: number): void {
    const need = this.outLength + extra;
    if (need <= this.out.length) return;
    let size = this.out.length * 2;
    while (size < need) size *= 2;
    const grown = Buffer.allocUnsafe(size);
    this.out.copy(grown, 0, 0, this.outLength);
    this.out = grown;
  }
}

const LF_BUFFER = Buffer.from([LF]);

function isBlank(b: Buffer, s: number, e: number): boolean {
  for (let k = s; k < e; k++) if (WS[b[k]] !== 1 && b[k] !== LF) return false;
  return true;
}

function readHex4(b: Buffer, i: number): number {
  return (HEX[b[i]] << 12) | (HEX[b[i + 1]] << 8) | (HEX[b[i + 2]] << 4) | HEX[b[i + 3]];
}

function writeUtf8(s: Buffer, n: number, cp: number): number {
  if (cp < 0x80) {
    s[n++] = cp;
  } else if (cp < 0x800) {
    s[n++] = 0xc0 | (cp >> 6);
    s[n++] = 0x80 | (cp & 0x3f);
  } else if (cp < 0x10000) {
    s[n++] = 0xe0 | (cp >> 12);
    s[n++] = 0x80 | ((cp >> 6) & 0x3f);
    s[n++] = 0x80 | (cp & 0x3f);
  } else {
    s[n++] = 0xf0 | (cp >> 18);
    s[n++] = 0x80 | ((cp >> 12) & 0x3f);
    s[n++] = 0x80 | ((cp >> 6) & 0x3f);
    s[n++] = 0x80 | (cp & 0x3f);
  }
  return n;
}

/** Short copies in JS: below ~32 bytes the native `copy` costs more than the loop (bench/core). */
function copyBytes(src: Buffer, s: number, e: number, out: Buffer, o: number): number {
  if (e - s > 32) return o + src.copy(out, o, s, e);
  while (s < e) out[o++] = src[s++];
  return o;
}

/** RFC 4180: quote only when the cell holds `,`, `"`, CR or LF, doubling every `"`. */
function writeQuotedIfNeeded(src: Buffer, s: number, e: number, out: Buffer, o: number): number {
  let needsQuotes = false;
  for (let k = s; k < e; k++) {
    const c = src[k];
    if (c === COMMA || c === QUOTE || c === CR || c === LF) {
      needsQuotes = true;
      break;
    }
  }
  if (!needsQuotes) return copyBytes(src, s, e, out, o);
  out[o++] = QUOTE;
  for (let k = s; k < e; k++) {
    const c = src[k];
    if (c === QUOTE) out[o++] = QUOTE;
    out[o++] = c;
  }
  out[o++] = QUOTE;
  return o;
}
