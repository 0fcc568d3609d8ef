// AssemblyScript: the WebAssembly kernel of the NDJSON → CSV transform (see ../ndjson-csv.ts).
// Compiled by `npm run build:kernel` to ../kernel.wasm.js (committed; CI rebuilds and compares).
//
// It scans a region of complete lines (each ends with LF) placed in linear memory by the JS
// wrapper, validates each line (RFC 8259, and UTF-8 when the wrapper could not vouch for the whole
// region), writes the CSV rows of the valid ones, and records the invalid ones (index, span,
// reason) for the wrapper to report. The rules are those of SPEC §4–5; the JS wrapper keeps the
// chunking, the BOM, and the lines that straddle chunks.
//
// Why WebAssembly: on the reference machine a plain JS byte loop tops out near 550 MB/s (bounds
// checks and tagged values per byte), the same loop here runs at ~1.3 GB/s, and SIMD lets
// strings be skipped 16 bytes at a time. Figures in BENCHMARKS.md.

// ---- memory map (fixed part) ----
const WS: usize = 1536; // space, tab, CR
const HEX: usize = 1792; // value or 255
const SIMPLE_ESCAPE: usize = 2048; // byte after '\' -> byte it stands for, 0 = none
const EOL: usize = 2304; // up to 2 bytes
const CELL_KIND: usize = 4096; // u8 per column
const CELL_START: usize = 8192; // i32 per column
const CELL_END: usize = 16384; // i32 per column
const COLUMN_NAME_PTR: usize = 24576; // i32 per column
const COLUMN_NAME_LEN: usize = 32768; // i32 per column
const COLUMN_NAMES: usize = 40960; // name bytes (up to 64 KiB)
const SHAPE_SLOTS: i32 = 64;
// Per slot, one u32: bits 0-8 the learned key's length (0 = none), bit 9 set when it ends with
// the colon, bits 10-31 the column + 1 (0 = not kept). A learned key is the member's source text
// from its opening quote, or after the first member from the comma before it (so one compare
// also checks the separator), to its closing quote or the colon right after it.
const SHAPE_META: usize = 106496;
const SHAPE_KEYS: usize = 110592; // 64 slots x 256 bytes
const TAIL_MASK: usize = 107520; // 17 x 16 bytes: the first r bytes 0xff
const SHAPE_KEY_MAX: i32 = 248;
export const DYNAMIC_BASE: usize = 131072;

const MAX_COLUMNS: i32 = 1024;
/** Room kept free at the end of the output area: copySpan writes up to 16 bytes past a cell. */
const ROW_SLACK: i32 = 32;

// Cell kinds.
const CELL_EMPTY: u8 = 0;
const CELL_RAW: u8 = 1;
const CELL_PLAIN: u8 = 2;
const CELL_PLAIN_QUOTED: u8 = 3;
const CELL_ESCAPED: u8 = 4;
const CELL_NESTED: u8 = 5;

// Line verdicts (also the reason codes reported to JS).
export const VALID: i32 = 0;
export const INVALID_JSON: i32 = 1;
export const INVALID_UTF8: i32 = 2;
export const NOT_OBJECT: i32 = 3;
export const INVALID_UNICODE: i32 = 4;
export const LINE_TOO_LONG: i32 = 5;
const BLANK: i32 = -1;
const BAD: i32 = -2;
const NOT_OBJ: i32 = -3;

// Configuration.
let columnCount: i32 = 0;
let eolLength: i32 = 2;
let maxLineBytes: i32 = 1048576;

// Dynamic layout, set by `layout`.
let outPtr: usize = 0;
let outCap: i32 = 0;
let stackPtr: usize = 0;
let stackCap: i32 = 0;
let scratchPtr: usize = 0;
let invalidPtr: usize = 0;
let invalidCap: i32 = 0;

// Results of the last `scan`.
export let outLength: i32 = 0;
export let validCount: i32 = 0;
export let invalidCount: i32 = 0;
export let linesScanned: i32 = 0;

// Scan state.
let strEscaped: bool = false;
let strComma: bool = false;

export function init(columns: i32, eolLf: bool, maxLine: i32): void {
  columnCount = columns < MAX_COLUMNS ? columns : MAX_COLUMNS;
  maxLineBytes = maxLine;
  if (eolLf) {
    eolLength = 1;
    store<u8>(EOL, 0x0a);
  } else {
    eolLength = 2;
    store<u8>(EOL, 0x0d);
    store<u8>(EOL + 1, 0x0a);
  }
  for (let b = 0; b < 256; b++) {
    store<u8>(WS + b, b == 0x20 || b == 0x09 || b == 0x0d ? 1 : 0);
    store<u8>(HEX + b, 255);
    store<u8>(SIMPLE_ESCAPE + b, 0);
  }
  for (let i = 0; i < 10; i++) store<u8>(HEX + 0x30 + i, <u8>i);
  for (let i = 0; i < 6; i++) {
    store<u8>(HEX + 0x41 + i, <u8>(10 + i));
    store<u8>(HEX + 0x61 + i, <u8>(10 + i));
  }
  store<u8>(SIMPLE_ESCAPE + 0x22, 0x22);
  store<u8>(SIMPLE_ESCAPE + 0x5c, 0x5c);
  store<u8>(SIMPLE_ESCAPE + 0x2f, 0x2f);
  store<u8>(SIMPLE_ESCAPE + 0x62, 0x08);
  store<u8>(SIMPLE_ESCAPE + 0x66, 0x0c);
  store<u8>(SIMPLE_ESCAPE + 0x6e, 0x0a);
  store<u8>(SIMPLE_ESCAPE + 0x72, 0x0d);
  store<u8>(SIMPLE_ESCAPE + 0x74, 0x09);
  for (let s = 0; s < SHAPE_SLOTS; s++) store<u32>(SHAPE_META + (<usize>s << 2), 0);
  for (let r = 0; r <= 16; r++) {
    for (let b = 0; b < 16; b++) store<u8>(TAIL_MASK + <usize>(r * 16 + b), b < r ? 0xff : 0);
  }
}

/** Column names: the wrapper writes the bytes at `namesPtr()` and declares each one. */
export function namesPtr(): usize {
  return COLUMN_NAMES;
}

export function setColumn(index: i32, offset: i32, length: i32): void {
  store<i32>(COLUMN_NAME_PTR + (<usize>index << 2), <i32>COLUMN_NAMES + offset);
  store<i32>(COLUMN_NAME_LEN + (<usize>index << 2), length);
}

export function layout(
  out: usize,
  outCapacity: i32,
  stack: usize,
  stackCapacity: i32,
  scratch: usize,
  invalid: usize,
  invalidCapacity: i32,
): void {
  outPtr = out;
  outCap = outCapacity;
  stackPtr = stack;
  stackCap = stackCapacity;
  scratchPtr = scratch;
  invalidPtr = invalid;
  invalidCap = invalidCapacity;
}

@inline function isWs(c: u32): bool {
  return load<u8>(WS + <usize>c) == 1;
}

@inline function skipWs(p: usize): usize {
  // Anything above 0x20 is not whitespace: one compare in the common (compact JSON) case.
  if (load<u8>(p) > 0x20) return p;
  while (load<u8>(WS + <usize>load<u8>(p)) == 1) p++;
  return p;
}

/**
 * Scans the lines in [start, end) (end - 1 is LF). Stops early, at a line start, when the output
 * or the invalid table is full: returns the position reached. The counters say what was done.
 */
export function scan(start: usize, end: usize, knownUtf8: bool): usize {
  outLength = 0;
  validCount = 0;
  invalidCount = 0;
  linesScanned = 0;
  let pos = start;
  const maxLine = <usize>maxLineBytes;
  while (pos < end) {
    if (invalidCount == invalidCap) return pos;
    let lineEnd: usize = 0;
    let verdict: i32;
    let cut: usize = 0;
    const outMark = outLength;
    if (!knownUtf8) {
      lineEnd = findLf(pos);
      cut = lineEnd > pos && load<u8>(lineEnd - 1) == 0x0d ? lineEnd - 1 : lineEnd;
      if (cut - pos > maxLine) {
        verdict = isBlankSpan(pos, cut) ? BLANK : LINE_TOO_LONG;
      } else if (!validUtf8(pos, cut)) {
        verdict = INVALID_UTF8;
      } else {
        verdict = -100; // scan below
      }
      if (verdict != -100) {
        linesScanned++;
        if (verdict != BLANK) record(linesScanned - 1, pos, cut, verdict);
        pos = lineEnd + 1;
        continue;
      }
    }
    const r = scanLine(pos);
    if (r >= 0) {
      lineEnd = <usize>r;
      cut = load<u8>(lineEnd - 1) == 0x0d ? lineEnd - 1 : lineEnd;
      if (cut - pos > maxLine) {
        linesScanned++;
        record(linesScanned - 1, pos, cut, LINE_TOO_LONG);
      } else {
        const w = writeRow(<i32>(cut - pos));
        if (w == 1) {
          linesScanned++;
          validCount++;
        } else if (w == 0) {
          outLength = outMark;
          linesScanned++;
          record(linesScanned - 1, pos, cut, INVALID_UNICODE);
        } else {
          outLength = outMark;
          return pos; // output full: the wrapper drains it and calls again from here
        }
      }
      pos = lineEnd + 1;
      continue;
    }
    lineEnd = findLf(pos);
    linesScanned++;
    if (r == BLANK) {
      pos = lineEnd + 1;
      continue;
    }
    cut = lineEnd > pos && load<u8>(lineEnd - 1) == 0x0d ? lineEnd - 1 : lineEnd;
    record(
      linesScanned - 1,
      pos,
      cut,
      cut - pos > maxLine ? LINE_TOO_LONG : r == NOT_OBJ ? NOT_OBJECT : INVALID_JSON,
    );
    pos = lineEnd + 1;
  }
  return pos;
}

@inline function record(index: i32, from: usize, to: usize, reason: i32): void {
  const e = invalidPtr + (<usize>invalidCount << 4);
  store<i32>(e, index);
  store<i32>(e, <i32>from, 4);
  store<i32>(e, <i32>to, 8);
  store<i32>(e, reason, 12);
  invalidCount++;
}

function findLf(p: usize): usize {
  // 16 bytes at a time; the region always ends with LF.
  const lf = i8x16.splat(0x0a);
  for (;;) {
    const m = i8x16.bitmask(i8x16.eq(v128.load(p), lf));
    if (m != 0) return p + <usize>ctz(m);
    p += 16;
  }
  return 0;
}

function isBlankSpan(from: usize, to: usize): bool {
  for (let p = from; p < to; p++) if (!isWs(load<u8>(p))) return false;
  return true;
}

/** UTF-8 validation (RFC 3629: no overlongs, no surrogates, ≤ U+10FFFF). */
function validUtf8(p: usize, end: usize): bool {
  while (p < end) {
    const c = <u32>load<u8>(p);
    if (c < 0x80) {
      p++;
      continue;
    }
    if (c >= 0xc2 && c <= 0xdf) {
      if (p + 1 >= end || (load<u8>(p + 1) & 0xc0) != 0x80) return false;
      p += 2;
      continue;
    }
    if (c >= 0xe0 && c <= 0xef) {
      if (p + 2 >= end) return false;
      const c1 = <u32>load<u8>(p + 1);
      const c2 = <u32>load<u8>(p + 2);
      if ((c1 & 0xc0) != 0x80 || (c2 & 0xc0) != 0x80) return false;
      if (c == 0xe0 && c1 < 0xa0) return false;
      if (c == 0xed && c1 > 0x9f) return false;
      p += 3;
      continue;
    }
    if (c >= 0xf0 && c <= 0xf4) {
      if (p + 3 >= end) return false;
      const c1 = <u32>load<u8>(p + 1);
      if ((c1 & 0xc0) != 0x80 || (load<u8>(p + 2) & 0xc0) != 0x80 || (load<u8>(p + 3) & 0xc0) != 0x80) {
        return false;
      }
      if (c == 0xf0 && c1 < 0x90) return false;
      if (c == 0xf4 && c1 > 0x8f) return false;
      p += 4;
      continue;
    }
    return false;
  }
  return true;
}

/** Validates the line at p. Returns the index of its LF for a valid object, else BLANK/BAD/NOT_OBJ. */
function scanLine(start: usize): i32 {
  let p = skipWs(start);
  let c = <u32>load<u8>(p);
  if (c == 0x0a) return BLANK;
  if (c != 0x7b) {
    const q = scanValue(p);
    if (q == 0) return BAD;
    p = skipWs(q);
    return load<u8>(p) == 0x0a ? NOT_OBJ : BAD;
  }
  for (let k: i32 = 0; k < columnCount; k += 8) store<u64>(CELL_KIND + <usize>k, 0);
  p = skipWs(p + 1);
  if (load<u8>(p) == 0x7d) {
    p++;
  } else {
    let slot: i32 = 0;
    // (Loops here end through a flag, not `break`: AssemblyScript 0.28 marks the code after a
    // `for (;;)` left by `break` from a nested `if` as unreachable.)
    let members = true;
    while (members) {
      let column: i32 = -1;
      let matched = false;
      if (slot < SHAPE_SLOTS) {
        // The learned key runs from its opening quote (from the comma before it, after the first
        // member) to its closing quote (or colon).
        const meta = load<u32>(SHAPE_META + (<usize>slot << 2));
        const len = <i32>(meta & 0x1ff);
        if (len != 0 && keyEquals(p, SHAPE_KEYS + (<usize>slot << 8), len)) {
          matched = true;
          p += <usize>len;
          column = <i32>(meta >> 10) - 1;
          if ((meta & 0x200) == 0) {
            p = skipWs(p);
            if (load<u8>(p) != 0x3a) return BAD;
            p++;
          }
        }
      }
      if (!matched) {
        let from = p;
        if (slot > 0) {
          // After a value: the separator.
          c = <u32>load<u8>(p);
          if (c <= 0x20) {
            p = skipWs(p);
            c = <u32>load<u8>(p);
          }
          if (c == 0x7d) {
            p++;
            members = false;
            continue;
          }
          if (c != 0x2c) return BAD;
          from = p;
          p = skipWs(p + 1);
        }
        if (load<u8>(p) != 0x22) return BAD;
        p++;
        const keyStart = p;
        const q = scanString(p);
        if (q == 0) return BAD;
        p = q;
        column = keyColumn(keyStart, p - 1);
        if (slot < SHAPE_SLOTS && !strEscaped) learnKey(from, p, column, slot);
        p = skipWs(p);
        if (load<u8>(p) != 0x3a) return BAD;
        p++;
      }
      slot++;
      c = <u32>load<u8>(p);
      if (c <= 0x20) {
        p = skipWs(p);
        c = <u32>load<u8>(p);
      }
      const valueStart = p;
      if (c == 0x22) {
        const q = scanStringAt(p + 1);
        if (q == 0) return BAD;
        p = q;
        if (column >= 0) {
          const off = <usize>column << 2;
          store<i32>(CELL_START + off, <i32>(valueStart + 1));
          store<i32>(CELL_END + off, <i32>(p - 1));
          store<u8>(
            CELL_KIND + <usize>column,
            strEscaped ? CELL_ESCAPED : strComma ? CELL_PLAIN_QUOTED : CELL_PLAIN,
          );
        }
      } else if (c == 0x7b || c == 0x5b) {
        const q = scanValue(p);
        if (q == 0) return BAD;
        p = q;
        if (column >= 0) {
          const off = <usize>column << 2;
          store<i32>(CELL_START + off, <i32>valueStart);
          store<i32>(CELL_END + off, <i32>p);
          store<u8>(CELL_KIND + <usize>column, CELL_NESTED);
        }
      } else {
        const q = scanScalar(p);
        if (q == 0) return BAD;
        p = q;
        if (column >= 0) {
          const off = <usize>column << 2;
          store<i32>(CELL_START + off, <i32>valueStart);
          store<i32>(CELL_END + off, <i32>p);
          store<u8>(CELL_KIND + <usize>column, c == 0x6e ? CELL_EMPTY : CELL_RAW);
        }
      }
    }
  }
  p = skipWs(p);
  return load<u8>(p) == 0x0a ? <i32>p : BAD;
}

/**
 * Compares the input at p with a learned key, 16 bytes at a time; the last block is masked. Keys
 * of up to 32 bytes (nearly all) are compared without a loop (+5 %).
 * Reading up to 15 bytes past the key is safe: the key slots are padded, the input area is
 * followed by the other areas, and a key never matches past the line's LF (it holds none).
 */
@inline function keyEquals(p: usize, key: usize, len: i32): bool {
  if (len <= 16) {
    const diff = v128.xor(v128.load(p), v128.load(key));
    return !v128.any_true(v128.and(diff, v128.load(TAIL_MASK + (<usize>len << 4))));
  }
  if (len <= 32) {
    const d0 = v128.xor(v128.load(p), v128.load(key));
    const d1 = v128.and(
      v128.xor(v128.load(p + 16), v128.load(key + 16)),
      v128.load(TAIL_MASK + (<usize>(len - 16) << 4)),
    );
    return !v128.any_true(v128.or(d0, d1));
  }
  let k: i32 = 0;
  while (k + 16 < len) {
    if (v128.any_true(v128.xor(v128.load(p + <usize>k), v128.load(key + <usize>k)))) return false;
    k += 16;
  }
  const diff = v128.xor(v128.load(p + <usize>k), v128.load(key + <usize>k));
  return !v128.any_true(v128.and(diff, v128.load(TAIL_MASK + (<usize>(len - k) << 4))));
}

function learnKey(start: usize, end: usize, column: i32, slot: i32): void {
  let colon: u32 = 0;
  if (load<u8>(end) == 0x3a) {
    end++;
    colon = 0x200;
  }
  const len = <i32>(end - start);
  const metaAt = SHAPE_META + (<usize>slot << 2);
  if (len > SHAPE_KEY_MAX) {
    store<u32>(metaAt, 0);
    return;
  }
  memory.copy(SHAPE_KEYS + (<usize>slot << 8), start, <usize>len);
  store<u32>(metaAt, <u32>len | colon | (<u32>(column + 1) << 10));
}

/**
 * Scans a string whose opening quote is at p - 1. Returns the position after the closing quote,
 * or 0. Sets strEscaped and strComma.
 */
function scanString(p: usize): usize {
  return scanStringAt(p);
}

@inline function scanStringAt(p: usize): usize {
  let escaped = false;
  let comma = false;
  const quote = i8x16.splat(0x22);
  const backslash = i8x16.splat(0x5c);
  const commaV = i8x16.splat(0x2c);
  const space = i8x16.splat(0x20);
  for (;;) {
    // 16 bytes at a time: stop at a quote, backslash, comma or control character.
    const v = v128.load(p);
    const stop = v128.or(
      v128.or(i8x16.eq(v, quote), i8x16.eq(v, backslash)),
      v128.or(i8x16.lt_u(v, space), i8x16.eq(v, commaV)),
    );
    const m = i8x16.bitmask(stop);
    if (m == 0) {
      p += 16;
      continue;
    }
    p += <usize>ctz(m);
    const c = load<u8>(p);
    if (c == 0x22) {
      strEscaped = escaped;
      strComma = comma;
      return p + 1;
    }
    if (c == 0x2c) {
      comma = true;
      p++;
      continue;
    }
    if (c != 0x5c) return 0; // control character (LF included: the line ends inside a string)
    escaped = true;
    const e = <u32>load<u8>(p + 1);
    if (load<u8>(SIMPLE_ESCAPE + <usize>e) != 0) {
      p += 2;
      continue;
    }
    if (e != 0x75) return 0;
    if (
      (load<u8>(HEX + <usize>load<u8>(p + 2)) |
        load<u8>(HEX + <usize>load<u8>(p + 3)) |
        load<u8>(HEX + <usize>load<u8>(p + 4)) |
        load<u8>(HEX + <usize>load<u8>(p + 5))) ==
      255
    ) {
      return 0;
    }
    p += 6;
  }
  return 0;
}

/**
 * Length of the run of digits at p: one SIMD compare for up to 15 digits, so the end of a number
 * costs no mispredicted loop exit (numbers of varying length are most of a taxi record).
 */
@inline function digitRun(p: usize): usize {
  const v = v128.load(p);
  // Digits: (v - 0x30) < 10 unsigned, done as a signed compare after moving 0x30 to -128: SSE has
  // a signed byte compare, an unsigned one is emulated with several instructions (+2 %).
  const digits = i8x16.lt_s(i8x16.sub(v, i8x16.splat(<i8>0xb0)), i8x16.splat(<i8>-118));
  const m = i8x16.bitmask(digits);
  const run = <usize>ctz(~m);
  if (run < 16) return run;
  let q = p + 16;
  while (<u32>load<u8>(q) - 0x30 < 10) q++;
  return q - p;
}

/** Number, true, false or null. Returns the position after it, or 0. Numbers are checked first. */
@inline function scanScalar(p: usize): usize {
  let c = <u32>load<u8>(p);
  if (c - 0x30 >= 10) {
    if (c == 0x2d) {
      p++;
      c = <u32>load<u8>(p);
      if (c - 0x30 >= 10) return 0;
    } else if (c == 0x74) {
      return load<u32>(p) == 0x65757274 ? p + 4 : 0; // "true"
    } else if (c == 0x66) {
      return load<u32>(p + 1) == 0x65736c61 ? p + 5 : 0; // "alse"
    } else if (c == 0x6e) {
      return load<u32>(p) == 0x6c6c756e ? p + 4 : 0; // "null"
    } else {
      return 0;
    }
  }
  // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  p = c == 0x30 ? p + 1 : p + digitRun(p);
  c = <u32>load<u8>(p);
  if (c == 0x2e) {
    const run = digitRun(p + 1);
    if (run == 0) return 0;
    p += run + 1;
    c = <u32>load<u8>(p);
  }
  if ((c | 0x20) == 0x65) {
    p++;
    const s = load<u8>(p);
    if (s == 0x2b || s == 0x2d) p++;
    const run = digitRun(p);
    if (run == 0) return 0;
    p += run;
  }
  return p;
}

/** Any JSON value, nesting on an explicit stack. Returns the position after it, or 0. */
function scanValue(p: usize): usize {
  let depth: i32 = 0;
  for (;;) {
    let c = <u32>load<u8>(p);
    if (c == 0x22) {
      p = scanString(p + 1);
      if (p == 0) return 0;
    } else if (c == 0x7b || c == 0x5b) {
      if (depth == stackCap) return 0; // deeper than the line is long: cannot happen
      p = skipWs(p + 1);
      if (c == 0x7b) {
        if (load<u8>(p) == 0x7d) {
          p++;
        } else {
          store<u8>(stackPtr + <usize>depth, 1);
          depth++;
          p = scanMemberKey(p);
          if (p == 0) return 0;
          continue;
        }
      } else if (load<u8>(p) == 0x5d) {
        p++;
      } else {
        store<u8>(stackPtr + <usize>depth, 2);
        depth++;
        continue;
      }
    } else {
      p = scanScalar(p);
      if (p == 0) return 0;
    }
    // After a value: close containers or go on to the next element.
    let closing = true;
    while (closing) {
      if (depth == 0) return p;
      p = skipWs(p);
      c = <u32>load<u8>(p);
      const inObject = load<u8>(stackPtr + <usize>(depth - 1)) == 1;
      if (c == 0x2c) {
        p = skipWs(p + 1);
        if (inObject) {
          p = scanMemberKey(p);
          if (p == 0) return 0;
        }
        closing = false;
      } else if (c == (inObject ? 0x7d : 0x5d)) {
        p++;
        depth--;
      } else {
        return 0;
      }
    }
  }
  return 0;
}

function scanMemberKey(p: usize): usize {
  if (load<u8>(p) != 0x22) return 0;
  p = scanString(p + 1);
  if (p == 0) return 0;
  p = skipWs(p);
  if (load<u8>(p) != 0x3a) return 0;
  return skipWs(p + 1);
}

/** Column of the key [start, end) (between the quotes), or -1. */
function keyColumn(start: usize, end: usize): i32 {
  let key = start;
  let length = <i32>(end - start);
  if (strEscaped) {
    length = unescapeInto(start, end, false);
    key = scratchPtr;
  }
  for (let c: i32 = 0; c < columnCount; c++) {
    const off = <usize>c << 2;
    if (load<i32>(COLUMN_NAME_LEN + off) != length) continue;
    if (memory.compare(key, <usize>load<i32>(COLUMN_NAME_PTR + off), <usize>length) == 0) return c;
  }
  return -1;
}

@inline function hex4(p: usize): u32 {
  return (
    (<u32>load<u8>(HEX + <usize>load<u8>(p)) << 12) |
    (<u32>load<u8>(HEX + <usize>load<u8>(p + 1)) << 8) |
    (<u32>load<u8>(HEX + <usize>load<u8>(p + 2)) << 4) |
    <u32>load<u8>(HEX + <usize>load<u8>(p + 3))
  );
}

/** Unescapes [start, end) into scratch. Returns its length, or -1 for a lone surrogate (strict). */
function unescapeInto(start: usize, end: usize, strict: bool): i32 {
  let n: usize = scratchPtr;
  let p = start;
  while (p < end) {
    const c = load<u8>(p);
    if (c != 0x5c) {
      store<u8>(n++, c);
      p++;
      continue;
    }
    const e = <usize>load<u8>(p + 1);
    if (e != 0x75) {
      store<u8>(n++, load<u8>(SIMPLE_ESCAPE + e));
      p += 2;
      continue;
    }
    let cp = hex4(p + 2);
    p += 6;
    if (cp >= 0xd800 && cp <= 0xdbff) {
      if (p < end && load<u8>(p) == 0x5c && load<u8>(p + 1) == 0x75) {
        const low = hex4(p + 2);
        if (low >= 0xdc00 && low <= 0xdfff) {
          cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
          p += 6;
        } else if (strict) {
          return -1;
        }
      } else if (strict) {
        return -1;
      }
    } else if (cp >= 0xdc00 && cp <= 0xdfff && strict) {
      return -1;
    }
    if (cp < 0x80) {
      store<u8>(n++, <u8>cp);
    } else if (cp < 0x800) {
      store<u8>(n++, <u8>(0xc0 | (cp >> 6)));
      store<u8>(n++, <u8>(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
      store<u8>(n++, <u8>(0xe0 | (cp >> 12)));
      store<u8>(n++, <u8>(0x80 | ((cp >> 6) & 0x3f)));
      store<u8>(n++, <u8>(0x80 | (cp & 0x3f)));
    } else {
      store<u8>(n++, <u8>(0xf0 | (cp >> 18)));
      store<u8>(n++, <u8>(0x80 | ((cp >> 12) & 0x3f)));
      store<u8>(n++, <u8>(0x80 | ((cp >> 6) & 0x3f)));
      store<u8>(n++, <u8>(0x80 | (cp & 0x3f)));
    }
  }
  return <i32>(n - scratchPtr);
}

/**
 * Copies a short span in whole words, without a loop up to 32 bytes (most cells); it may write
 * (and read) up to 16 bytes past the span, which the next cell overwrites (writeRow keeps
 * ROW_SLACK bytes free at the end of the output area; the input areas are padded). Unrolled: +2 %.
 */
@inline function copySpan(o: usize, s: usize, n: usize): void {
  if (n <= 16) {
    store<u64>(o, load<u64>(s));
    store<u64>(o + 8, load<u64>(s + 8));
    return;
  }
  if (n <= 32) {
    v128.store(o, v128.load(s));
    v128.store(o + 16, v128.load(s + 16));
    return;
  }
  if (n > 64) {
    memory.copy(o, s, n);
    return;
  }
  for (let k: usize = 0; k < n; k += 8) store<u64>(o + k, load<u64>(s + k));
}

/** Writes the row of the current line: 1 written, 0 lone surrogate, -1 output full. */
function writeRow(lineBytes: i32): i32 {
  // Every cell is a span of the line and grows to at most 2× plus its quotes and comma (quotes
  // doubled; unescaping never lengthens), so this bound holds without looking at the cells. Only
  // near the end of the output area are they measured. (i64: a line may be up to 2^30 bytes.)
  const bound = <i64>outLength + 2 * <i64>lineBytes + <i64>(3 * columnCount + eolLength + ROW_SLACK);
  if (bound > <i64>outCap) {
    let need: i32 = eolLength;
    for (let c: i32 = 0; c < columnCount; c++) {
      const off = <usize>c << 2;
      need += load<u8>(CELL_KIND + <usize>c) != CELL_EMPTY
        ? 2 * (load<i32>(CELL_END + off) - load<i32>(CELL_START + off)) + 3
        : 1;
    }
    if (outLength + need + ROW_SLACK > outCap) return -1;
  }
  let o: usize = outPtr + <usize>outLength;
  for (let c: i32 = 0; c < columnCount; c++) {
    if (c > 0) store<u8>(o++, 0x2c);
    const kind = load<u8>(CELL_KIND + <usize>c);
    if (kind == CELL_EMPTY) continue;
    const off = <usize>c << 2;
    const s = <usize>load<i32>(CELL_START + off);
    const e = <usize>load<i32>(CELL_END + off);
    if (kind == CELL_RAW || kind == CELL_PLAIN) {
      copySpan(o, s, e - s);
      o += e - s;
    } else if (kind == CELL_PLAIN_QUOTED) {
      store<u8>(o++, 0x22);
      copySpan(o, s, e - s);
      o += e - s;
      store<u8>(o++, 0x22);
    } else if (kind == CELL_NESTED) {
      o = writeQuotedIfNeeded(s, e, o);
    } else {
      const n = unescapeInto(s, e, true);
      if (n < 0) return 0;
      o = writeQuotedIfNeeded(scratchPtr, scratchPtr + <usize>n, o);
    }
  }
  store<u8>(o++, load<u8>(EOL));
  if (eolLength == 2) store<u8>(o++, load<u8>(EOL + 1));
  outLength = <i32>(o - outPtr);
  return 1;
}

/** RFC 4180: quoted only when it holds `,` `"` CR or LF; `"` doubled. */
function writeQuotedIfNeeded(s: usize, e: usize, o: usize): usize {
  let needs = false;
  for (let k = s; k < e; k++) {
    const c = load<u8>(k);
    if (c == 0x2c || c == 0x22 || c == 0x0d || c == 0x0a) {
      needs = true;
      break;
    }
  }
  if (!needs) {
    memory.copy(o, s, e - s);
    return o + (e - s);
  }
  store<u8>(o++, 0x22);
  for (let k = s; k < e; k++) {
    const c = load<u8>(k);
    if (c == 0x22) store<u8>(o++, 0x22);
    store<u8>(o++, c);
  }
  store<u8>(o++, 0x22);
  return o;
}
