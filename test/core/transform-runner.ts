/**
 * Drives NdjsonCsvTransform over a body given as chunks and collects everything it reports, so
 * tests compare plain values. `push`/`end` return views of an internal buffer that the next call
 * overwrites, so every piece is copied before the next push (as the commit buffer does).
 */
import {
  NdjsonCsvTransform,
  type InvalidReason,
  type TransformOptions,
} from '../../src/ingest/core/ndjson-csv.js';

export interface ReportedLine {
  line: number;
  reason: InvalidReason;
  /** The `raw` buffer as latin1, so a failed comparison shows every byte. */
  raw: string;
  lineBytes: number;
}

export interface TransformResult {
  /** The CSV as latin1 text (one char per byte): exact bytes, readable in a diff. */
  csv: string;
  csvBytes: Buffer;
  /** The CSV decoded as UTF-8, for rows with multi-byte text. */
  csvUtf8: string;
  valid: number;
  invalid: number;
  total: number;
  lines: number;
  errors: ReportedLine[];
}

export const TEST_COLUMNS = ['a', 'b'] as const;

export function options(overrides: Partial<TransformOptions> = {}): TransformOptions {
  return { columns: TEST_COLUMNS, eol: 'lf', maxLineBytes: 1 << 20, ...overrides };
}

/** Body text → bytes. Use latin1 strings (`'\xff'`) only through `bytes()`. */
export function utf8(text: string): Buffer {
  return Buffer.from(text, 'utf8');
}

/** Each char of `text` is one byte (0-255): for invalid UTF-8 and exact byte layouts. */
export function bytes(text: string): Buffer {
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) > 0xff) throw new Error(`bytes(): char ${i} is not a byte`);
  }
  return Buffer.from(text, 'latin1');
}

export function runChunks(
  chunks: readonly Buffer[],
  overrides: Partial<TransformOptions> = {},
): TransformResult {
  const errors: ReportedLine[] = [];
  const t = new NdjsonCsvTransform(options(overrides), (line, reason, raw, lineBytes) => {
    errors.push({ line, reason, raw: raw.toString('latin1'), lineBytes });
  });
  const out: Buffer[] = [];
  for (const chunk of chunks) out.push(Buffer.from(t.push(chunk)));
  out.push(Buffer.from(t.end()));
  const csvBytes = Buffer.concat(out);
  return {
    csv: csvBytes.toString('latin1'),
    csvBytes,
    csvUtf8: csvBytes.toString('utf8'),
    valid: t.valid,
    invalid: t.invalid,
    total: t.total,
    lines: t.lines,
    errors,
  };
}

/** The whole body in one chunk. */
export function run(body: Buffer | string, overrides: Partial<TransformOptions> = {}) {
  return runChunks([typeof body === 'string' ? utf8(body) : body], overrides);
}

/** The body one byte per chunk. */
export function runBytewise(body: Buffer, overrides: Partial<TransformOptions> = {}) {
  const chunks: Buffer[] = [];
  for (let i = 0; i < body.length; i++) chunks.push(body.subarray(i, i + 1));
  return runChunks(chunks, overrides);
}

/** Splits `body` at the given offsets (clamped, sorted; repeats give empty chunks). */
export function splitAt(body: Buffer, offsets: readonly number[]): Buffer[] {
  const cuts = offsets.map((o) => Math.min(Math.max(o, 0), body.length)).sort((x, y) => x - y);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const cut of cuts) {
    chunks.push(body.subarray(from, cut));
    from = cut;
  }
  chunks.push(body.subarray(from));
  return chunks;
}

/** RFC 4180 cell as the spec wants it: quoted only for `,` `"` CR LF, with `"` doubled. */
export function csvCell(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** True when `text` holds a UTF-16 surrogate that is not part of a pair (not writable as UTF-8). */
export function hasLoneSurrogate(text: string): boolean {
  return /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(text);
}
