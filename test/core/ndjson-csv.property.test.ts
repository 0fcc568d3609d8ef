/**
 * Property tests (fast-check) for NdjsonCsvTransform:
 * 1. Any split of a body into chunks gives the same CSV bytes, counts and invalid-line reports as
 *    the body in one chunk.
 * 2. The validator agrees with JSON.parse, on generated JSON and on mutated JSON.
 * 3. Cells round-trip: the CSV parsed back with csv-parse gives the text SPEC §5 asks for, and the
 *    bytes are exactly RFC 4180 with minimal quoting.
 *
 * Random choices that shape one generated value (whitespace, which characters to \u-escape) come
 * from a seeded PRNG whose seed fast-check generates, so every counterexample is reproducible.
 */
import { isUtf8 } from 'node:buffer';
import { describe, expect, it } from '@jest/globals';
import { parse } from 'csv-parse/sync';
import fc from 'fast-check';
import { prng } from '../support/taxi.js';
import {
  csvCell,
  hasLoneSurrogate,
  run,
  runBytewise,
  runChunks,
  splitAt,
  utf8,
  type TransformResult,
} from './transform-runner.js';

type Rand = () => number;

/** FC_RUNS_SCALE=20 runs every property 20 times as long, for a deeper search than CI's. */
const SCALE = Number(process.env.FC_RUNS_SCALE ?? '1');
const runs = (n: number) => ({ numRuns: Math.max(1, Math.round(n * SCALE)) });

// ---------------------------------------------------------------------------------------------
// JSON text with the freedom RFC 8259 allows: whitespace between tokens, any character escaped.

const SHORT_ESCAPES: Record<string, string> = {
  '"': '\\"',
  '\\': '\\\\',
  '\b': '\\b',
  '\f': '\\f',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
};

function hex4(code: number, r: Rand): string {
  const h = code.toString(16).padStart(4, '0');
  return '\\u' + (r() < 0.5 ? h : h.toUpperCase());
}

/** A JSON string literal for `s`; lone surrogates and controls are always escaped. */
function jsonString(s: string, r: Rand, escapeRate = 0.15): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0) ?? 0;
    const mustEscape = ch === '"' || ch === '\\' || cp < 0x20 || (cp >= 0xd800 && cp <= 0xdfff);
    if (!mustEscape && r() >= escapeRate) {
      out += ch;
    } else if (SHORT_ESCAPES[ch] !== undefined && r() < 0.7) {
      out += SHORT_ESCAPES[ch];
    } else if (ch === '/' && r() < 0.5) {
      out += '\\/';
    } else if (cp > 0xffff) {
      out += hex4(ch.charCodeAt(0), r) + hex4(ch.charCodeAt(1), r);
    } else {
      out += hex4(cp, r);
    }
  }
  return out + '"';
}

/** JSON whitespace that may stand inside a line (LF would end it). */
function ws(r: Rand): string {
  const x = r();
  if (x < 0.7) return '';
  return [' ', '\t', '\r', '  ', ' \t '][Math.floor((x - 0.7) / 0.06)] ?? ' ';
}

function serialize(v: unknown, r: Rand): string {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return String(v);
  if (typeof v === 'number') return JSON.stringify(v);
  if (typeof v === 'string') return jsonString(v, r);
  if (Array.isArray(v)) {
    return '[' + ws(r) + v.map((x) => serialize(x, r)).join(ws(r) + ',' + ws(r)) + ws(r) + ']';
  }
  const members = Object.entries(v as Record<string, unknown>).map(
    ([k, x]) => jsonString(k, r) + ws(r) + ':' + ws(r) + serialize(x, r),
  );
  return '{' + ws(r) + members.join(ws(r) + ',' + ws(r)) + ws(r) + '}';
}

function objectText(members: readonly (readonly [string, string])[], r: Rand): string {
  const body = members.map(([k, v]) => k + ws(r) + ':' + ws(r) + v).join(ws(r) + ',' + ws(r));
  return ws(r) + '{' + ws(r) + body + ws(r) + '}' + ws(r);
}

// ---------------------------------------------------------------------------------------------
// Arbitraries.

/** Characters that matter to JSON, CSV or UTF-8, mixed with any code point. */
const trickyChar = fc.oneof(
  fc.constantFrom(
    ',',
    '"',
    '\r',
    '\n',
    '\t',
    '\0',
    '\\',
    '/',
    ' ',
    'é',
    '€',
    '😀',
    '\u2028',
    '\ufeff',
    '\x7f',
    '\u0085',
  ),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
);
const trickyString = fc.string({ unit: trickyChar, maxLength: 12 });
const loneSurrogate = fc.constantFrom('\ud800', '\udbff', '\udc00', '\udfff');
const stringMaybeLone = fc.string({ unit: fc.oneof(trickyChar, loneSurrogate), maxLength: 8 });

/** Number source text per RFC 8259 §6, including forms JSON.stringify never writes. */
const numberText = fc
  .tuple(
    fc.constantFrom('', '-'),
    fc.oneof(fc.constant('0'), fc.stringMatching(/^[1-9][0-9]{0,21}$/)),
    fc.option(fc.stringMatching(/^\.[0-9]{1,8}$/), { nil: '' }),
    fc.option(fc.stringMatching(/^[eE][+-]?[0-9]{1,4}$/), { nil: '' }),
  )
  .map((parts) => parts.join(''));

const jsonValue = fc.jsonValue({ maxDepth: 3, stringUnit: 'binary' });

/** A value of a kept field, with the cell SPEC §5 asks for. */
type Kept = { json: (r: Rand) => string; cell: string } | { missing: true };

const keptValue: fc.Arbitrary<Kept> = fc.oneof(
  fc.constant({ missing: true } as const),
  fc.constant({ json: () => 'null', cell: '' }),
  fc.boolean().map((b) => ({ json: () => String(b), cell: String(b) })),
  numberText.map((n) => ({ json: () => n, cell: n })),
  trickyString.map((s) => ({ json: (r: Rand) => jsonString(s, r), cell: s })),
  // Nested values keep their source text, whitespace and escapes included.
  fc
    .tuple(
      fc.oneof(fc.array(jsonValue, { maxLength: 4 }), fc.dictionary(fc.string(), jsonValue)),
      fc.integer(),
    )
    .map(([v, seed]) => {
      const text = serialize(v, prng(seed));
      return { json: () => text, cell: text };
    }),
);

const COLUMNS = ['a', 'b', 'c'] as const;
/** Key spellings: kept ones (plain and escaped), near misses, and others. */
const KEY_TEXT: Record<string, string[]> = {
  a: ['"a"', '"\\u0061"'],
  b: ['"b"', '"\\u0062"'],
  c: ['"c"', '"\\u0063"'],
};
const otherKey = fc.oneof(
  fc.constantFrom('"A"', '"ab"', '"a "', '""', '"c\\u0000"', '"bb"', '"\\ud800"'),
  fc
    .string()
    .filter((s) => !(COLUMNS as readonly string[]).includes(s))
    .map((s) => JSON.stringify(s)),
);

function shuffle<T>(items: T[], r: Rand): T[] {
  for (let k = items.length - 1; k > 0; k--) {
    const j = Math.floor(r() * (k + 1));
    [items[k], items[j]] = [items[j], items[k]];
  }
  return items;
}

/**
 * A record line with its expected cells: kept values (some missing) among other members, and
 * earlier duplicates of kept keys that the last member must override.
 */
const recordLine = fc
  .record({
    kept: fc.tuple(keptValue, keptValue, keptValue),
    others: fc.array(fc.tuple(otherKey, jsonValue), { maxLength: 3 }),
    shadowed: fc.array(fc.tuple(fc.constantFrom(0, 1, 2), jsonValue), { maxLength: 2 }),
    seed: fc.integer(),
  })
  .map(({ kept, others, shadowed, seed }) => {
    const r = prng(seed);
    const keyText = (i: number) => KEY_TEXT[COLUMNS[i]][r() < 0.5 ? 0 : 1];
    const members: { column: number; text: [string, string] }[] = shuffle(
      [
        ...others.map(([k, v]) => ({ column: -1, text: [k, serialize(v, r)] as [string, string] })),
        ...shadowed
          .filter(([i]) => !('missing' in kept[i]))
          .map(([i, v]) => ({
            column: i,
            text: [keyText(i), serialize(v, r)] as [string, string],
          })),
      ],
      r,
    );
    kept.forEach((k, i) => {
      if ('missing' in k) return;
      // Anywhere after the last earlier duplicate of this key.
      let from = 0;
      members.forEach((m, idx) => {
        if (m.column === i) from = idx + 1;
      });
      const at = from + Math.floor(r() * (members.length - from + 1));
      members.splice(at, 0, { column: i, text: [keyText(i), k.json(r)] });
    });
    return {
      text: objectText(
        members.map((m) => m.text),
        r,
      ),
      cells: kept.map((k) => ('missing' in k ? '' : k.cell)),
    };
  });

// ---------------------------------------------------------------------------------------------
// 1. Chunking.

const blankLine = fc.constantFrom('', ' ', '\t', '\r', ' \t\r ', '   \t   \t   ');
const invalidLine = fc.oneof(
  fc
    .constantFrom(
      '{"a":1,}',
      '[1,2]',
      '"str"',
      'nope',
      '{"a":01}',
      '{"a":"\\ud800"}',
      '{"a":"x\\',
      '{"a":"\\u12',
      '\u00a0',
      '\ufeff{}',
      '\x0c',
    )
    .map(utf8),
  fc
    .constantFrom('\xff', '{"a":"\xe2\x82"}', '\xc3', '{"a":"\xed\xa0\x80"}', '\xef\xbb')
    .map((s) => Buffer.from(s, 'latin1')),
  // Random bytes (never LF), which are mostly invalid JSON, often invalid UTF-8.
  fc.uint8Array({ maxLength: 20 }).map((a) => Buffer.from(a.map((b) => (b === 0x0a ? 0x20 : b)))),
  // A valid record cut short.
  fc
    .tuple(recordLine, fc.nat())
    .map(([l, n]) => utf8(l.text).subarray(0, n % Math.max(1, utf8(l.text).length))),
);
const anyLine = fc.oneof(
  { weight: 5, arbitrary: recordLine.map((l) => utf8(l.text)) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(stringMaybeLone, fc.integer())
      .map(([s, seed]) => utf8(`{"a":${jsonString(s, prng(seed))}}`)),
  },
  { weight: 2, arbitrary: invalidLine },
  { weight: 2, arbitrary: blankLine.map(utf8) },
);

const body = fc
  .record({
    bom: fc.boolean(),
    lines: fc.array(fc.tuple(anyLine, fc.constantFrom('\n', '\r\n')), { maxLength: 12 }),
    lastWithoutLf: fc.boolean(),
  })
  .map(({ bom, lines, lastWithoutLf }) => {
    const parts: Buffer[] = bom ? [Buffer.from([0xef, 0xbb, 0xbf])] : [];
    lines.forEach(([line, eol], k) => {
      parts.push(line);
      if (!(lastWithoutLf && k === lines.length - 1)) parts.push(utf8(eol));
    });
    return { input: Buffer.concat(parts), expected: expectedOutcome(lines, bom, lastWithoutLf) };
  });

/**
 * What SPEC §4 says about a generated body, line by line, using the JSON.parse oracle of
 * property 2 (CR before LF does not change a verdict: CR is JSON whitespace). Raw bytes and rows
 * are left to the split-versus-whole comparison and to the other properties.
 */
function expectedOutcome(lines: [Buffer, string][], bom: boolean, lastWithoutLf: boolean) {
  const errors: { line: number; reason: string }[] = [];
  let valid = 0;
  let physical = 0;
  lines.forEach(([line], k) => {
    if (lastWithoutLf && k === lines.length - 1 && line.length === 0) return; // no such line
    physical++;
    // Without a BOM of its own, a body whose first line starts with one loses it.
    const bomStripped =
      k === 0 && !bom && line.subarray(0, 3).equals(Buffer.from([0xef, 0xbb, 0xbf]));
    const verdict = oracle(bomStripped ? line.subarray(3) : line, COLUMNS);
    if (verdict === 'valid') valid++;
    else if (verdict !== 'blank') errors.push({ line: k + 1, reason: verdict });
  });
  return { valid, lines: physical, errors };
}

/** Offsets to split at (any number, any place, repeats = empty chunks), or null for 1-byte chunks. */
const splits = fc.oneof(fc.constant(null), fc.array(fc.nat({ max: 100_000 }), { maxLength: 16 }));

function comparable(r: TransformResult) {
  return { csv: r.csv, valid: r.valid, invalid: r.invalid, lines: r.lines, errors: r.errors };
}

function splitResult(
  input: Buffer,
  offsets: number[] | null,
  maxLineBytes: number,
): TransformResult {
  if (offsets === null) return runBytewise(input, { maxLineBytes, columns: COLUMNS });
  return runChunks(
    splitAt(
      input,
      offsets.map((o) => o % (input.length + 1)),
    ),
    { maxLineBytes, columns: COLUMNS },
  );
}

describe('property: chunking does not change the result', () => {
  it('any split of a body gives the same CSV, counts and invalid lines (and SPEC §4 verdicts)', () => {
    fc.assert(
      fc.property(body, splits, ({ input, expected }, offsets) => {
        const whole = run(input, { columns: COLUMNS });
        expect({
          valid: whole.valid,
          lines: whole.lines,
          errors: whole.errors.map(({ line, reason }) => ({ line, reason })),
        }).toEqual(expected);
        expect(comparable(splitResult(input, offsets, 1 << 20))).toEqual(comparable(whole));
      }),
      runs(400),
    );
  });

  it('any split of a body gives the same result with a small maxLineBytes', () => {
    fc.assert(
      fc.property(
        body,
        splits,
        fc.constantFrom(4, 8, 16, 32),
        ({ input }, offsets, maxLineBytes) => {
          const whole = run(input, { columns: COLUMNS, maxLineBytes });
          expect(comparable(splitResult(input, offsets, maxLineBytes))).toEqual(comparable(whole));
        },
      ),
      runs(400),
    );
  });
});

// ---------------------------------------------------------------------------------------------
// 2. Agreement with JSON.parse.
//
// A line is valid iff JSON.parse accepts it and yields a non-array object, with the intended
// differences, which the oracle below models instead of filtering out:
// - invalid UTF-8: JSON.parse never sees it (decoding turns it into U+FFFD); the transform rejects
//   the line as invalid_utf8, whatever the JSON.
// - a lone surrogate in a kept string field: JSON.parse accepts it; the transform cannot write it
//   as UTF-8 and rejects the line as invalid_unicode (SPEC §4).
// - a blank line (space, tab, CR only): JSON.parse rejects it; NDJSON skips it (no record).
// Mutations never insert LF (it would end the line). Lines are run after a first line, so a
// leading U+FEFF is an ordinary character for both, as it is for JSON.parse.

const ORACLE_COLUMNS = ['a', 'b'] as const;

function oracle(line: Buffer, columns: readonly string[] = ORACLE_COLUMNS): string {
  if (/^[ \t\r]*$/.test(line.toString('latin1'))) return 'blank';
  if (!isUtf8(line)) return 'invalid_utf8';
  let value: unknown;
  try {
    value = JSON.parse(line.toString('utf8'));
  } catch {
    return 'invalid_json';
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not_object';
  const record = value as Record<string, unknown>;
  for (const c of columns) {
    const v = Object.hasOwn(record, c) ? record[c] : undefined;
    if (typeof v === 'string' && hasLoneSurrogate(v)) return 'invalid_unicode';
  }
  return 'valid';
}

function transformVerdict(line: Buffer): string {
  const r = runChunks([utf8('{}\n'), line, utf8('\n')], { columns: ORACLE_COLUMNS });
  expect(r.lines).toBe(2);
  if (r.total === 1) return 'blank';
  return r.valid === 2 ? 'valid' : r.errors[0].reason;
}

/** Any JSON text (objects most of the time), serialized with random whitespace and escapes. */
const jsonLine = fc
  .tuple(
    fc.oneof(
      {
        weight: 4,
        arbitrary: fc.dictionary(fc.oneof(fc.constantFrom('a', 'b'), fc.string()), jsonValue),
      },
      {
        weight: 2,
        arbitrary: fc.dictionary(
          fc.constantFrom('a', 'b', 'z'),
          fc.oneof(stringMaybeLone, jsonValue),
        ),
      },
      { weight: 1, arbitrary: jsonValue },
    ),
    fc.integer(),
  )
  .map(([v, seed]) => {
    const r = prng(seed);
    return utf8(ws(r) + serialize(v, r) + ws(r));
  });

const MUTATION_BYTES = Buffer.from(
  '{}[]",:\\019-+.eEtfnulaxN /*\t\r\x00\x1f\x7f\xc3\xa9\xff\x80\xef\xbb\xbf',
  'latin1',
);

const mutation = fc.record({
  op: fc.constantFrom('insert', 'delete', 'replace'),
  at: fc.nat(),
  byte: fc.constantFrom(...MUTATION_BYTES),
});

function mutate(line: Buffer, mutations: { op: string; at: number; byte: number }[]): Buffer {
  let b = Buffer.from(line);
  for (const m of mutations) {
    const at = m.at % (b.length + 1);
    if (m.op === 'insert')
      b = Buffer.concat([b.subarray(0, at), Buffer.from([m.byte]), b.subarray(at)]);
    else if (at < b.length && m.op === 'delete')
      b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]);
    else if (at < b.length) b[at] = m.byte;
  }
  return b;
}

describe('property: the validator agrees with JSON.parse', () => {
  it('on generated JSON with random whitespace and escapes', () => {
    fc.assert(
      fc.property(jsonLine, (line) => {
        expect(transformVerdict(line)).toBe(oracle(line));
      }),
      runs(1000),
    );
  });

  it('on mutated JSON (random byte insert, delete, replace)', () => {
    fc.assert(
      fc.property(
        jsonLine,
        fc.array(mutation, { minLength: 1, maxLength: 3 }),
        (line, mutations) => {
          const mutated = mutate(line, mutations);
          expect(transformVerdict(mutated)).toBe(oracle(mutated));
        },
      ),
      runs(3000),
    );
  });
});

describe('property: records that repeat a shape agree with JSON.parse line by line', () => {
  // The kernel matches each member against the key the record before had at the same position,
  // from the comma before it to the colon, in one compare. These bodies repeat a few records byte
  // for byte, reformatted or mutated, so learned keys match, half-match and fail mid-body.
  const shapeBody = fc
    .tuple(
      fc.array(
        fc.tuple(
          fc.dictionary(fc.constantFrom('a', 'ab', 'b', 'ba', 'z', ''), jsonValue, {
            minKeys: 1,
            maxKeys: 6,
          }),
          fc.integer(),
        ),
        { minLength: 1, maxLength: 3 },
      ),
      fc.array(
        fc.record({
          base: fc.nat(),
          reformat: fc.integer({ min: 0, max: 4 }),
          mutations: fc.array(mutation, { maxLength: 2 }),
        }),
        { minLength: 2, maxLength: 40 },
      ),
    )
    .map(([bases, picks]) =>
      picks.map(({ base, reformat, mutations }) => {
        const [value, seed] = bases[base % bases.length];
        // Mostly the exact bytes of the base record; sometimes other whitespace or a mutation.
        const line = utf8(serialize(value, prng(reformat === 0 ? seed + 1 : seed)));
        return reformat === 1 ? mutate(line, mutations) : line;
      }),
    );

  it('gives each line the verdict JSON.parse gives it, and the row it gets alone', () => {
    fc.assert(
      fc.property(shapeBody, (lines) => {
        const r = run(Buffer.concat(lines.flatMap((l) => [l, utf8('\n')])), {
          columns: ORACLE_COLUMNS,
        });
        const errors: { line: number; reason: string }[] = [];
        let rows = '';
        lines.forEach((line, k) => {
          const verdict = oracle(line);
          if (verdict === 'valid') {
            rows += run(Buffer.concat([line, utf8('\n')]), { columns: ORACLE_COLUMNS }).csv;
          } else if (verdict !== 'blank') {
            errors.push({ line: k + 1, reason: verdict });
          }
        });
        expect(r.errors.map(({ line, reason }) => ({ line, reason }))).toEqual(errors);
        expect(r.csv).toBe(rows);
      }),
      runs(400),
    );
  });
});

// ---------------------------------------------------------------------------------------------
// 3. CSV round trip.

describe('property: cells round-trip through a CSV parser', () => {
  it('each cell parses back to the unescaped string, the number text or the nested source', () => {
    fc.assert(
      fc.property(
        fc.array(recordLine, { minLength: 1, maxLength: 8 }),
        fc.constantFrom('lf', 'crlf' as const),
        (records, eol) => {
          const input = utf8(records.map((r) => r.text).join('\n') + '\n');
          const r = run(input, { columns: COLUMNS, eol: eol as 'lf' | 'crlf' });
          expect([r.valid, r.invalid]).toEqual([records.length, 0]);
          const parsed = parse(r.csvUtf8, {
            record_delimiter: eol === 'crlf' ? '\r\n' : '\n',
          }) as string[][];
          expect(parsed).toEqual(records.map((x) => x.cells));
          // And the exact bytes: quotes only where RFC 4180 needs them.
          const terminator = eol === 'crlf' ? '\r\n' : '\n';
          expect(r.csvUtf8).toBe(
            records.map((x) => x.cells.map(csvCell).join(',') + terminator).join(''),
          );
        },
      ),
      runs(300),
    );
  });
});
