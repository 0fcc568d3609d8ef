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
const FLOAT_LIMIT: usize = 2560; // the 309 digits of 2^1024 - 2^970 (set by the wrapper)
// Value slots: what a path found in the current line.
const CELL_KIND: usize = 4096; // u8 per slot
const CELL_START: usize = 8192; // i32 per slot
const CELL_END: usize = 16384; // i32 per slot
// Path entries (one step of a path; a node's entries are contiguous): the key bytes.
const ENTRY_KEY_PTR: usize = 24576; // i32 per entry
const ENTRY_KEY_LEN: usize = 32768; // i32 per entry
const KEY_BYTES: usize = 40960; // key bytes (up to 64 KiB)
const SHAPE_SLOTS: i32 = 64;
// Per slot, one u32: bits 0-8 the learned key's length (0 = none), bit 9 set when it ends with
// the colon, bits 10-20 the value slot + 1 and bits 21-31 the child node + 1 of the root entry
// (0: none), so a matched member needs no table lookup. A learned key is the member's source text
// from its opening quote, or after the first member from the comma before it (so one compare also
// checks the separator), to its closing quote or the colon right after it.
const SHAPE_META: usize = 106496;
const SHAPE_KEYS: usize = 110592; // 64 slots x 256 bytes
const TAIL_MASK: usize = 107520; // 17 x 16 bytes: the first r bytes 0xff
const SHAPE_KEY_MAX: i32 = 248;
// Path entries, continued.
const ENTRY_SLOT: usize = 131072; // i32 per entry: value slot, or -1
const ENTRY_CHILD: usize = 139264; // i32 per entry: node of the steps below it, or -1
const ENTRY_INDEX: usize = 147456; // i32 per entry: array index, or -1 for a key step
// Nodes (node 0 is the line's object): entries [first, first + count); their subtree's value
// slots are [lo, hi) (cleared when the member is met again: the last duplicate wins).
const NODE_FIRST: usize = 155648;
const NODE_COUNT: usize = 159744;
const NODE_LO: usize = 163840;
const NODE_HI: usize = 167936;
// Columns.
const COL_TYPE: usize = 172032; // i32 per column (T_* below)
const COL_SLOT: usize = 176128; // i32 per column
const COL_FLAGS: usize = 180224; // i32 per column: F_* below
const COL_FIXED_PTR: usize = 184320; // i32 per column: the default's cell, or a meta value
const COL_FIXED_LEN: usize = 188416; // i32 per column
const FIXED_BYTES: usize = 192512; // defaults and meta values, written as cells (64 KiB)
export const DYNAMIC_BASE: usize = 262144;

const MAX_ENTRIES: i32 = 2048;
const MAX_NODES: i32 = 1024;
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
export const TYPE_MISMATCH: i32 = 6;
export const MISSING_VALUE: i32 = 7;
const BLANK: i32 = -1;
const BAD: i32 = -2;
const NOT_OBJ: i32 = -3;

// Column types (the wrapper uses the same numbers).
const T_JSON: i32 = 0;
const T_STRING: i32 = 1;
const T_INT: i32 = 2;
const T_FLOAT: i32 = 3;
const T_BOOL: i32 = 4;
const T_DATE: i32 = 5;
const T_DATETIME: i32 = 6;
/** A cell fixed for the request or the dataset (request_id, received_at, node): COL_FIXED_*. */
const T_FIXED: i32 = 7;
/** The line's physical number. */
const T_LINE: i32 = 8;
// Column flags.
const F_NOT_NULL: i32 = 1;
const F_DEFAULT: i32 = 2;

// Configuration.
let columnCount: i32 = 0;
let slotCount: i32 = 0;
let eolLength: i32 = 2;
let maxLineBytes: i32 = 1048576;
/** Most columns one byte of a line can be written by (1 unless paths share or nest). */
let spanFactor: i32 = 1;
/** Bytes a row may take beyond its cells' spans (defaults, meta values, datetimes, quotes). */
let fixedBound: i32 = 0;
/** Physical lines before this scan (for `line` columns). */
let lineBase: i32 = 0;
/** Every column is a `json` path column: the row is written without looking at types. */
let plainColumns: bool = true;

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
/** Why writeRow refused the row, and the column (reported as reason | (column + 1) << 8). */
let rowReason: i32 = 0;

export function init(columns: i32, slots: i32, eolLf: bool, maxLine: i32): void {
  columnCount = columns < MAX_COLUMNS ? columns : MAX_COLUMNS;
  slotCount = slots < MAX_COLUMNS ? slots : MAX_COLUMNS;
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

/** Where the wrapper writes key bytes (setEntry offsets are relative to it). */
export function keysPtr(): usize {
  return KEY_BYTES;
}

/** Where the wrapper writes fixed cells (setColumn offsets are relative to it). */
export function fixedPtr(): usize {
  return FIXED_BYTES;
}

export function floatLimitPtr(): usize {
  return FLOAT_LIMIT;
}

/** One step: a key (keyOffset, keyLength) or an array index (index >= 0). */
export function setEntry(
  entry: i32,
  keyOffset: i32,
  keyLength: i32,
  index: i32,
  slot: i32,
  child: i32,
): void {
  if (entry >= MAX_ENTRIES) return;
  const off = <usize>entry << 2;
  store<i32>(ENTRY_KEY_PTR + off, <i32>KEY_BYTES + keyOffset);
  store<i32>(ENTRY_KEY_LEN + off, keyLength);
  store<i32>(ENTRY_INDEX + off, index);
  store<i32>(ENTRY_SLOT + off, slot);
  store<i32>(ENTRY_CHILD + off, child);
}

export function setNode(node: i32, first: i32, count: i32, lo: i32, hi: i32): void {
  if (node >= MAX_NODES) return;
  const off = <usize>node << 2;
  store<i32>(NODE_FIRST + off, first);
  store<i32>(NODE_COUNT + off, count);
  store<i32>(NODE_LO + off, lo);
  store<i32>(NODE_HI + off, hi);
}

export function setColumn(
  column: i32,
  type: i32,
  slot: i32,
  flags: i32,
  fixedOffset: i32,
  fixedLength: i32,
): void {
  if (column >= MAX_COLUMNS) return;
  const off = <usize>column << 2;
  store<i32>(COL_TYPE + off, type);
  store<i32>(COL_SLOT + off, slot);
  store<i32>(COL_FLAGS + off, flags);
  store<i32>(COL_FIXED_PTR + off, <i32>FIXED_BYTES + fixedOffset);
  store<i32>(COL_FIXED_LEN + off, fixedLength);
  if (type != T_JSON || slot != column || flags != 0) plainColumns = false;
}

export function setBounds(factor: i32, fixed: i32): void {
  spanFactor = factor;
  fixedBound = fixed;
}

export function setLineBase(lines: i32): void {
  lineBase = lines;
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
          record(linesScanned - 1, pos, cut, rowReason);
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
  for (let k: i32 = 0; k < slotCount; k += 8) store<u64>(CELL_KIND + <usize>k, 0);
  p = skipWs(p + 1);
  if (load<u8>(p) == 0x7d) {
    p++;
  } else {
    let slot: i32 = 0;
    // (Loops here end through a flag, not `break`: AssemblyScript 0.28 marks the code after a
    // `for (;;)` left by `break` from a nested `if` as unreachable.)
    let members = true;
    while (members) {
      // The value slot this member fills, and the node of the paths that go on below it.
      let cell: i32 = -1;
      let child: i32 = -1;
      let matched = false;
      if (slot < SHAPE_SLOTS) {
        // The learned key runs from its opening quote (from the comma before it, after the first
        // member) to its closing quote (or colon).
        const meta = load<u32>(SHAPE_META + (<usize>slot << 2));
        const len = <i32>(meta & 0x1ff);
        if (len != 0 && keyEquals(p, SHAPE_KEYS + (<usize>slot << 8), len)) {
          matched = true;
          p += <usize>len;
          cell = <i32>((meta >> 10) & 0x7ff) - 1;
          child = <i32>(meta >> 21) - 1;
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
        const entry = keyEntry(0, keyStart, p - 1);
        if (entry >= 0) {
          cell = load<i32>(ENTRY_SLOT + (<usize>entry << 2));
          child = load<i32>(ENTRY_CHILD + (<usize>entry << 2));
        }
        if (slot < SHAPE_SLOTS && !strEscaped) learnKey(from, p, cell, child, slot);
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
      if (child >= 0) clearSubtree(child);
      const valueStart = p;
      if (c == 0x22) {
        const q = scanStringAt(p + 1);
        if (q == 0) return BAD;
        p = q;
        if (cell >= 0) {
          const off = <usize>cell << 2;
          store<i32>(CELL_START + off, <i32>(valueStart + 1));
          store<i32>(CELL_END + off, <i32>(p - 1));
          store<u8>(
            CELL_KIND + <usize>cell,
            strEscaped ? CELL_ESCAPED : strComma ? CELL_PLAIN_QUOTED : CELL_PLAIN,
          );
        }
      } else if (c == 0x7b || c == 0x5b) {
        const q = child >= 0 ? scanNode(p, child) : scanValue(p);
        if (q == 0) return BAD;
        p = q;
        if (cell >= 0) {
          const off = <usize>cell << 2;
          store<i32>(CELL_START + off, <i32>valueStart);
          store<i32>(CELL_END + off, <i32>p);
          store<u8>(CELL_KIND + <usize>cell, CELL_NESTED);
        }
      } else {
        const q = scanScalar(p);
        if (q == 0) return BAD;
        p = q;
        if (cell >= 0) {
          const off = <usize>cell << 2;
          store<i32>(CELL_START + off, <i32>valueStart);
          store<i32>(CELL_END + off, <i32>p);
          store<u8>(CELL_KIND + <usize>cell, c == 0x6e ? CELL_EMPTY : CELL_RAW);
        }
      }
    }
  }
  p = skipWs(p);
  return load<u8>(p) == 0x0a ? <i32>p : BAD;
}

/** A member on a path was met (again): what an earlier one left below it is gone. */
function clearSubtree(node: i32): void {
  const off = <usize>node << 2;
  const hi = load<i32>(NODE_HI + off);
  for (let k = load<i32>(NODE_LO + off); k < hi; k++) store<u8>(CELL_KIND + <usize>k, CELL_EMPTY);
}

/**
 * Scans the object or array at p (on a path: some of its members or elements are kept), filling
 * the value slots of `node`'s entries. Returns the position after it, or 0. Recursion only follows
 * paths, so it is as deep as the longest path; other nested values go through scanValue.
 */
function scanNode(p: usize, node: i32): usize {
  const open = load<u8>(p);
  p = skipWs(p + 1);
  if (open == 0x7b) {
    if (load<u8>(p) == 0x7d) return p + 1;
    for (;;) {
      if (load<u8>(p) != 0x22) return 0;
      const keyStart = p + 1;
      const q = scanString(keyStart);
      if (q == 0) return 0;
      const entry = keyEntry(node, keyStart, q - 1);
      p = skipWs(q);
      if (load<u8>(p) != 0x3a) return 0;
      p = scanMember(skipWs(p + 1), entry);
      if (p == 0) return 0;
      p = skipWs(p);
      const c = load<u8>(p);
      if (c == 0x7d) return p + 1;
      if (c != 0x2c) return 0;
      p = skipWs(p + 1);
    }
  }
  if (load<u8>(p) == 0x5d) return p + 1;
  let index: i32 = 0;
  for (;;) {
    p = scanMember(p, indexEntry(node, index));
    if (p == 0) return 0;
    p = skipWs(p);
    const c = load<u8>(p);
    if (c == 0x5d) return p + 1;
    if (c != 0x2c) return 0;
    p = skipWs(p + 1);
    index++;
  }
  return 0;
}

/** The value at p of a member or element whose path entry is `entry` (-1: none). */
function scanMember(p: usize, entry: i32): usize {
  let cell: i32 = -1;
  let child: i32 = -1;
  if (entry >= 0) {
    cell = load<i32>(ENTRY_SLOT + (<usize>entry << 2));
    child = load<i32>(ENTRY_CHILD + (<usize>entry << 2));
    if (child >= 0) clearSubtree(child);
  }
  const c = <u32>load<u8>(p);
  let q: usize;
  let kind: u8;
  let from = p;
  let to: usize;
  if (c == 0x22) {
    q = scanStringAt(p + 1);
    if (q == 0) return 0;
    from = p + 1;
    to = q - 1;
    kind = strEscaped ? CELL_ESCAPED : strComma ? CELL_PLAIN_QUOTED : CELL_PLAIN;
  } else if (c == 0x7b || c == 0x5b) {
    q = child >= 0 ? scanNode(p, child) : scanValue(p);
    if (q == 0) return 0;
    to = q;
    kind = CELL_NESTED;
  } else {
    q = scanScalar(p);
    if (q == 0) return 0;
    to = q;
    kind = c == 0x6e ? CELL_EMPTY : CELL_RAW;
  }
  if (cell >= 0) {
    const off = <usize>cell << 2;
    store<i32>(CELL_START + off, <i32>from);
    store<i32>(CELL_END + off, <i32>to);
    store<u8>(CELL_KIND + <usize>cell, kind);
  }
  return q;
}

/** The entry of `node` for array index `index`, or -1. */
function indexEntry(node: i32, index: i32): i32 {
  const off = <usize>node << 2;
  const first = load<i32>(NODE_FIRST + off);
  const end = first + load<i32>(NODE_COUNT + off);
  for (let e = first; e < end; e++) {
    if (load<i32>(ENTRY_INDEX + (<usize>e << 2)) == index) return e;
  }
  return -1;
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

function learnKey(start: usize, end: usize, cell: i32, child: i32, slot: i32): void {
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
  store<u32>(metaAt, <u32>len | colon | (<u32>(cell + 1) << 10) | (<u32>(child + 1) << 21));
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

/** The key step of `node` for the key [start, end) (between the quotes), or -1. */
function keyEntry(node: i32, start: usize, end: usize): i32 {
  let key = start;
  let length = <i32>(end - start);
  if (strEscaped) {
    length = unescapeInto(start, end, false);
    key = scratchPtr;
  }
  const nodeOff = <usize>node << 2;
  const first = load<i32>(NODE_FIRST + nodeOff);
  const last = first + load<i32>(NODE_COUNT + nodeOff);
  for (let e: i32 = first; e < last; e++) {
    const off = <usize>e << 2;
    if (load<i32>(ENTRY_KEY_LEN + off) != length || load<i32>(ENTRY_INDEX + off) >= 0) continue;
    if (memory.compare(key, <usize>load<i32>(ENTRY_KEY_PTR + off), <usize>length) == 0) return e;
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

/**
 * Writes the row of the current line: 1 written, 0 refused (rowReason says why and for which
 * column), -1 output full.
 */
function writeRow(lineBytes: i32): i32 {
  // Every cell is a span of the line and grows to at most 2× plus its quotes and comma (quotes
  // doubled; unescaping never lengthens), so this bound holds without looking at the cells; a
  // byte is written by at most spanFactor columns, and defaults, meta values and datetimes are at
  // most fixedBound bytes. Only near the end of the output area are cells measured. (i64: a line
  // may be up to 2^30 bytes.)
  const bound =
    <i64>outLength +
    2 * <i64>spanFactor * <i64>lineBytes +
    <i64>(3 * columnCount + eolLength + ROW_SLACK + fixedBound);
  if (bound > <i64>outCap) {
    let need: i64 = <i64>(eolLength + fixedBound);
    for (let c: i32 = 0; c < columnCount; c++) {
      const cell = load<i32>(COL_SLOT + (<usize>c << 2));
      const off = <usize>cell << 2;
      need +=
        cell >= 0 && load<u8>(CELL_KIND + <usize>cell) != CELL_EMPTY
          ? <i64>(2 * (load<i32>(CELL_END + off) - load<i32>(CELL_START + off)) + 3)
          : 1;
    }
    if (<i64>outLength + need + ROW_SLACK > <i64>outCap) return -1;
  }
  let o: usize = outPtr + <usize>outLength;
  if (plainColumns) {
    // Top-level fields as they are (no datasets file): the loop of the original service.
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
        if (n < 0) return refuse(INVALID_UNICODE, c);
        o = writeQuotedIfNeeded(scratchPtr, scratchPtr + <usize>n, o);
      }
    }
  } else {
    for (let c: i32 = 0; c < columnCount; c++) {
      if (c > 0) store<u8>(o++, 0x2c);
      o = writeTypedCell(o, c);
      if (o == 0) return 0;
    }
  }
  store<u8>(o++, load<u8>(EOL));
  if (eolLength == 2) store<u8>(o++, load<u8>(EOL + 1));
  outLength = <i32>(o - outPtr);
  return 1;
}

@inline function refuse(reason: i32, column: i32): i32 {
  rowReason = reason | ((column + 1) << 8);
  return 0;
}

/** A `json` cell of a present value (SPEC §5). Returns the output position, or 0 (lone surrogate). */
@inline function writeJsonCell(o: usize, kind: u8, s: usize, e: usize): usize {
  if (kind == CELL_RAW || kind == CELL_PLAIN) {
    copySpan(o, s, e - s);
    return o + (e - s);
  }
  if (kind == CELL_PLAIN_QUOTED) {
    store<u8>(o++, 0x22);
    copySpan(o, s, e - s);
    o += e - s;
    store<u8>(o++, 0x22);
    return o;
  }
  if (kind == CELL_NESTED) return writeQuotedIfNeeded(s, e, o);
  const n = unescapeInto(s, e, true);
  if (n < 0) return 0;
  return writeQuotedIfNeeded(scratchPtr, scratchPtr + <usize>n, o);
}

/** Column c of a dataset with types, defaults or meta columns (SPEC §8). 0: refused. */
function writeTypedCell(o: usize, c: i32): usize {
  const off = <usize>c << 2;
  const type = load<i32>(COL_TYPE + off);
  if (type == T_FIXED) return copyFixed(o, off);
  if (type == T_LINE) return writeDecimal(o, <u64>(lineBase + linesScanned + 1));
  const cell = load<i32>(COL_SLOT + off);
  const kind = load<u8>(CELL_KIND + <usize>cell);
  if (kind == CELL_EMPTY) {
    const flags = load<i32>(COL_FLAGS + off);
    if ((flags & F_DEFAULT) != 0) return copyFixed(o, off);
    if ((flags & F_NOT_NULL) != 0) return <usize>refuse(MISSING_VALUE, c);
    return o;
  }
  const s = <usize>load<i32>(CELL_START + (<usize>cell << 2));
  const e = <usize>load<i32>(CELL_END + (<usize>cell << 2));
  const isString = kind == CELL_PLAIN || kind == CELL_PLAIN_QUOTED || kind == CELL_ESCAPED;
  if (type == T_JSON || type == T_STRING) {
    if (type == T_STRING && !isString) return <usize>refuse(TYPE_MISMATCH, c);
    const q = writeJsonCell(o, kind, s, e);
    return q == 0 ? <usize>refuse(INVALID_UNICODE, c) : q;
  }
  if (type == T_INT) {
    if (kind != CELL_RAW || !isInt(s, e)) return <usize>refuse(TYPE_MISMATCH, c);
    copySpan(o, s, e - s);
    return o + (e - s);
  }
  if (type == T_FLOAT) {
    const first = load<u8>(s);
    if (kind != CELL_RAW || first == 0x74 || first == 0x66 || !finiteFloat(s, e)) {
      return <usize>refuse(TYPE_MISMATCH, c);
    }
    copySpan(o, s, e - s);
    return o + (e - s);
  }
  if (type == T_BOOL) {
    const first = load<u8>(s);
    if (kind != CELL_RAW || (first != 0x74 && first != 0x66)) return <usize>refuse(TYPE_MISMATCH, c);
    copySpan(o, s, e - s);
    return o + (e - s);
  }
  // date and datetime: strings judged after unescaping; datetime also takes Unix seconds.
  if (type == T_DATETIME && kind == CELL_RAW) {
    const seconds = unixSeconds(s, e);
    if (seconds < 0) return <usize>refuse(TYPE_MISMATCH, c);
    return writeDateTime(o, seconds, 0, 0);
  }
  if (!isString) return <usize>refuse(TYPE_MISMATCH, c);
  let t = s;
  let n = <i32>(e - s);
  if (kind == CELL_ESCAPED) {
    n = unescapeInto(s, e, false);
    t = scratchPtr;
  }
  if (type == T_DATE) {
    if (n != 10 || !isDate(t)) return <usize>refuse(TYPE_MISMATCH, c);
    copySpan(o, t, 10);
    return o + 10;
  }
  const q = parseDateTime(o, t, n);
  return q == 0 ? <usize>refuse(TYPE_MISMATCH, c) : q;
}

@inline function copyFixed(o: usize, off: usize): usize {
  const n = <usize>load<i32>(COL_FIXED_LEN + off);
  const s = <usize>load<i32>(COL_FIXED_PTR + off);
  if (n <= 32) {
    // Word copies, like copySpan (the fixed area and the output have slack after them).
    v128.store(o, v128.load(s));
    v128.store(o + 16, v128.load(s + 16));
  } else {
    memory.copy(o, s, n);
  }
  return o + n;
}

function writeDecimal(o: usize, v: u64): usize {
  let digits: usize = 1;
  for (let t = v; t >= 10; t /= 10) digits++;
  let q = o + digits;
  do {
    q--;
    store<u8>(q, <u8>(0x30 + <u32>(v % 10)));
    v /= 10;
  } while (v != 0);
  return o + digits;
}

/** A JSON number (already validated) written -?(0|[1-9][0-9]*) within the signed 64-bit range. */
function isInt(s: usize, e: usize): bool {
  let p = s;
  const negative = load<u8>(p) == 0x2d;
  if (negative) p++;
  for (let k = p; k < e; k++) if (<u32>load<u8>(k) - 0x30 >= 10) return false;
  const n = e - p;
  if (n < 19) return true;
  if (n > 19) return false;
  let v: u64 = 0;
  for (let k = p; k < e; k++) v = v * 10 + <u64>(load<u8>(k) - 0x30);
  return v <= (negative ? 9223372036854775808 : 9223372036854775807);
}

/**
 * Whether a JSON number (already validated) rounds to a finite double: its magnitude is below
 * 2^1024 - 2^970, the midpoint between the largest double and 2^1024 (a tie rounds to even, which
 * is infinity). Decided on the decimal exponent, and on the digits only for values of 10^308 to
 * 10^309.
 */
function finiteFloat(s: usize, e: usize): bool {
  // Without an exponent, under 309 digits is finite: the usual case, decided by length alone.
  if (e - s < 300) {
    let plain = true;
    for (let k = s; k < e; k++) if ((load<u8>(k) | 0x20) == 0x65) plain = false;
    if (plain) return true;
  }
  let p = s;
  if (load<u8>(p) == 0x2d) p++;
  const intStart = p;
  while (p < e && <u32>load<u8>(p) - 0x30 < 10) p++;
  const intEnd = p;
  let fracStart = p;
  let fracEnd = p;
  if (p < e && load<u8>(p) == 0x2e) {
    p++;
    fracStart = p;
    while (p < e && <u32>load<u8>(p) - 0x30 < 10) p++;
    fracEnd = p;
  }
  let exponent: i64 = 0;
  if (p < e) {
    p++; // e or E
    let negative = false;
    const sign = load<u8>(p);
    if (sign == 0x2b || sign == 0x2d) {
      negative = sign == 0x2d;
      p++;
    }
    while (p < e) {
      exponent = exponent * 10 + <i64>(load<u8>(p) - 0x30);
      if (exponent > 100000000) exponent = 100000000;
      p++;
    }
    if (negative) exponent = -exponent;
  }
  // The decimal exponent of the first significant digit.
  let first = intStart;
  while (first < intEnd && load<u8>(first) == 0x30) first++;
  let lead: i64;
  if (first < intEnd) {
    lead = <i64>(intEnd - first) - 1 + exponent;
  } else {
    first = fracStart;
    while (first < fracEnd && load<u8>(first) == 0x30) first++;
    if (first == fracEnd) return true; // zero
    lead = -<i64>(first - fracStart + 1) + exponent;
  }
  if (lead < 308) return true;
  if (lead > 308) return false;
  // Compare the significant digits with the limit's 309, digit by digit.
  let q = first;
  for (let i: usize = 0; i < 309; i++) {
    if (q == intEnd) q = fracStart;
    const limit = load<u8>(FLOAT_LIMIT + i);
    if (q >= fracEnd || (q >= intEnd && q < fracStart)) return true; // digits ran out: below
    const d = load<u8>(q);
    if (d != limit) return d < limit;
    q++;
  }
  return false; // equal to the limit, or above it
}

function daysInMonth(y: i32, m: i32): i32 {
  if (m == 2) return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 ? 29 : 28;
  return m == 4 || m == 6 || m == 9 || m == 11 ? 30 : 31;
}

@inline function digit(p: usize): i32 {
  return <i32>load<u8>(p) - 0x30;
}

/** Two digits at p, or -1. */
function two(p: usize): i32 {
  const a = digit(p);
  const b = digit(p + 1);
  if (<u32>a >= 10 || <u32>b >= 10) return -1;
  return a * 10 + b;
}

/** `YYYY-MM-DD` at p, a real date of years 0001–9999. */
function isDate(p: usize): bool {
  if (load<u8>(p + 4) != 0x2d || load<u8>(p + 7) != 0x2d) return false;
  const hi = two(p);
  const lo = two(p + 2);
  const m = two(p + 5);
  const d = two(p + 8);
  if (hi < 0 || lo < 0 || m < 1 || m > 12 || d < 1) return false;
  const y = hi * 100 + lo;
  return y >= 1 && d <= daysInMonth(y, m);
}

/** Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
function daysFromCivil(y: i64, m: i64, d: i64): i64 {
  if (m <= 2) y -= 1;
  const era = (y >= 0 ? y : y - 399) / 400;
  const yoe = y - era * 400;
  const doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

/**
 * Writes `YYYY-MM-DD hh:mm:ss` (UTC) of `seconds` since the epoch, then `.` and the fraction
 * digits [fraction, fractionEnd) if any. 0 when the year is outside 0001–9999.
 */
function writeDateTime(o: usize, seconds: i64, fraction: usize, fractionEnd: usize): usize {
  let days = seconds / 86400;
  let rest = seconds % 86400;
  if (rest < 0) {
    rest += 86400;
    days--;
  }
  // civil_from_days
  const z = days + 719468;
  const era = (z >= 0 ? z : z - 146096) / 146097;
  const doe = z - era * 146097;
  const yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const mp = (5 * doy + 2) / 153;
  const d = doy - (153 * mp + 2) / 5 + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  const y = yoe + era * 400 + (m <= 2 ? 1 : 0);
  if (y < 1 || y > 9999) return 0;
  put2(o, <i32>(y / 100));
  put2(o + 2, <i32>(y % 100));
  store<u8>(o + 4, 0x2d);
  put2(o + 5, <i32>m);
  store<u8>(o + 7, 0x2d);
  put2(o + 8, <i32>d);
  store<u8>(o + 10, 0x20);
  put2(o + 11, <i32>(rest / 3600));
  store<u8>(o + 13, 0x3a);
  put2(o + 14, <i32>((rest / 60) % 60));
  store<u8>(o + 16, 0x3a);
  put2(o + 17, <i32>(rest % 60));
  o += 19;
  if (fractionEnd > fraction) {
    store<u8>(o++, 0x2e);
    memory.copy(o, fraction, fractionEnd - fraction);
    o += fractionEnd - fraction;
  }
  return o;
}

@inline function put2(o: usize, v: i32): void {
  store<u8>(o, <u8>(0x30 + v / 10));
  store<u8>(o + 1, <u8>(0x30 + (v % 10)));
}

/** Unix seconds written as an int from 0 to 253402300799 (9999-12-31 23:59:59), or -1. */
function unixSeconds(s: usize, e: usize): i64 {
  let p = s;
  const negative = load<u8>(p) == 0x2d;
  if (negative) p++;
  if (e - p > 12) return -1;
  let v: i64 = 0;
  for (let k = p; k < e; k++) {
    const d = digit(k);
    if (<u32>d >= 10) return -1;
    v = v * 10 + <i64>d;
  }
  if (negative && v != 0) return -1;
  return v <= 253402300799 ? v : -1;
}

/**
 * A datetime string [p, p + n) (SPEC §8): writes its cell in UTC and returns the output
 * position, or 0 when the type does not accept it.
 */
function parseDateTime(o: usize, p: usize, n: i32): usize {
  if (n < 19 || !isDate(p)) return 0;
  const sep = load<u8>(p + 10);
  if (sep != 0x54 && sep != 0x20) return 0;
  if (load<u8>(p + 13) != 0x3a || load<u8>(p + 16) != 0x3a) return 0;
  const h = two(p + 11);
  const mi = two(p + 14);
  const sec = two(p + 17);
  if (h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59) return 0;
  const end = p + <usize>n;
  let q = p + 19;
  let fraction: usize = 0;
  let fractionEnd: usize = 0;
  if (q < end && load<u8>(q) == 0x2e) {
    q++;
    fraction = q;
    while (q < end && <u32>digit(q) < 10) q++;
    fractionEnd = q;
    const digits = fractionEnd - fraction;
    if (digits < 1 || digits > 9) return 0;
  }
  let offset: i64 = 0;
  if (q < end) {
    const z = load<u8>(q);
    if (z == 0x5a) {
      q++;
    } else if (z == 0x2b || z == 0x2d) {
      if (end - q != 6 || load<u8>(q + 3) != 0x3a) return 0;
      const oh = two(q + 1);
      const om = two(q + 4);
      if (oh < 0 || oh > 23 || om < 0 || om > 59) return 0;
      offset = <i64>(oh * 60 + om) * 60;
      if (z == 0x2d) offset = -offset;
      q += 6;
    } else {
      return 0;
    }
  }
  if (q != end) return 0;
  if (offset == 0) {
    // UTC already: the cell is the text with a space for the T, and its fraction.
    copySpan(o, p, 19);
    store<u8>(o + 10, 0x20);
    o += 19;
    if (fractionEnd > fraction) {
      store<u8>(o++, 0x2e);
      copySpan(o, fraction, fractionEnd - fraction);
      o += fractionEnd - fraction;
    }
    return o;
  }
  const y = <i64>(two(p) * 100 + two(p + 2));
  const days = daysFromCivil(y, <i64>two(p + 5), <i64>two(p + 8));
  const seconds = days * 86400 + <i64>(h * 3600 + mi * 60 + sec) - offset;
  // The fraction is copied from the input, which may be scratch: write it before it is reused.
  return writeDateTime(o, seconds, fraction, fractionEnd);
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
