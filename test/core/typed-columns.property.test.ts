/**
 * Property test of datasets' columns (SPEC §8): random schemas (paths of keys and indexes, every
 * type, nullable, defaults) over random records in random chunkings, against a reference written
 * here from the SPEC: records are built as value trees, written as JSON text by this file (so the
 * source text of numbers and nested values is known), checked with JSON.parse, and evaluated by a
 * small path walker and type table that share no code with the kernel.
 */
import fc from 'fast-check';
import { NdjsonCsvTransform } from '../../src/ingest/core/ndjson-csv.js';
import { COLUMN_TYPES, type ColumnSpec, type ColumnType } from '../../src/ingest/core/schema.js';

type Value =
  | { t: 'num'; src: string }
  | { t: 'str'; value: string; src: string }
  | { t: 'lit'; src: 'true' | 'false' | 'null' }
  | { t: 'obj'; members: [string, string, Value][] } // key, key source, value
  | { t: 'arr'; items: Value[] };

function text(v: Value): string {
  switch (v.t) {
    case 'num':
    case 'str':
    case 'lit':
      return v.src;
    case 'obj':
      return `{${v.members.map(([, k, x]) => `${k}:${text(x)}`).join(',')}}`;
    case 'arr':
      return `[${v.items.map(text).join(',')}]`;
  }
}

const KEYS = ['a', 'b', 'c', 'k y', 'q"'];
type Step = { key: string } | { index: number };

/** The value at a path; undefined when missing (SPEC §8, last duplicate wins). */
function walk(v: Value, steps: Step[]): Value | undefined {
  let cur: Value | undefined = v;
  for (const s of steps) {
    if (cur === undefined) return undefined;
    if ('key' in s) {
      if (cur.t !== 'obj') return undefined;
      const hits: [string, string, Value][] = cur.members.filter(([k]) => k === s.key);
      cur = hits.length === 0 ? undefined : hits[hits.length - 1][2];
    } else {
      if (cur.t !== 'arr') return undefined;
      cur = cur.items[s.index];
    }
  }
  return cur;
}

function quote(s: string): string {
  return /[,"\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

const lone = (s: string): boolean => /\p{Cs}/u.test(s);
const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

function utcDate(y: number, mo: number, d: number): Date | null {
  const date = new Date(0);
  date.setUTCFullYear(y, mo - 1, d);
  return date.getUTCFullYear() === y && date.getUTCMonth() === mo - 1 && date.getUTCDate() === d
    ? date
    : null;
}

function formatUtc(ms: number, fraction: string | undefined): string | null {
  const d = new Date(ms);
  const y = d.getUTCFullYear();
  if (y < 1 || y > 9999) return null;
  const base = `${pad(y, 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  return fraction === undefined ? base : `${base}.${fraction}`;
}

/** The cell of a present, non-null value, or a reason. */
function cell(type: ColumnType, v: Value): { cell: string } | { reason: string } {
  const mismatch = { reason: 'type_mismatch' };
  const isInt = (src: string): boolean =>
    /^-?(0|[1-9][0-9]*)$/.test(src) && BigInt(src) >= -(2n ** 63n) && BigInt(src) < 2n ** 63n;
  switch (type) {
    case 'json':
    case 'string':
      if (v.t === 'str')
        return lone(v.value) ? { reason: 'invalid_unicode' } : { cell: quote(v.value) };
      if (type === 'string') return mismatch;
      return { cell: quote(text(v)) };
    case 'int':
      return v.t === 'num' && isInt(v.src) ? { cell: v.src } : mismatch;
    case 'float':
      return v.t === 'num' && Number.isFinite(Number(v.src)) ? { cell: v.src } : mismatch;
    case 'bool':
      return v.t === 'lit' ? { cell: v.src } : mismatch;
    case 'date': {
      if (v.t !== 'str') return mismatch;
      const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(v.value);
      return m !== null && utcDate(+m[1], +m[2], +m[3]) !== null && +m[1] >= 1
        ? { cell: v.value }
        : mismatch;
    }
    case 'datetime': {
      if (v.t === 'num') {
        if (!/^-?(0|[1-9][0-9]*)$/.test(v.src)) return mismatch;
        const n = BigInt(v.src);
        if (n < 0n || n > 253402300799n) return mismatch;
        return { cell: formatUtc(Number(n) * 1000, undefined)! };
      }
      if (v.t !== 'str') return mismatch;
      const m =
        /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})?$/.exec(
          v.value,
        );
      if (m === null) return mismatch;
      const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number);
      const day = y >= 1 ? utcDate(y, mo, d) : null;
      if (day === null || h > 23 || mi > 59 || s > 59) return mismatch;
      let offset = 0;
      if (m[8] !== undefined && m[8] !== 'Z') {
        const oh = Number(m[8].slice(1, 3));
        const om = Number(m[8].slice(4, 6));
        if (oh > 23 || om > 59) return mismatch;
        offset = (m[8][0] === '-' ? -1 : 1) * (oh * 60 + om) * 60000;
      }
      const out = formatUtc(day.getTime() + ((h * 60 + mi) * 60 + s) * 1000 - offset, m[7]);
      return out === null ? mismatch : { cell: out };
    }
  }
}

interface Column {
  spec: ColumnSpec;
  steps: Step[];
  defaultValue?: Value;
}

function referenceRow(
  columns: Column[],
  record: Value,
): { row: string } | { reason: string; column: string } {
  const cells: string[] = [];
  for (const c of columns) {
    const type = c.spec.type ?? 'json';
    let v = walk(record, c.steps);
    if (v === undefined || (v.t === 'lit' && v.src === 'null')) {
      if (c.defaultValue !== undefined) v = c.defaultValue;
      else if (c.spec.nullable === false) return { reason: 'missing_value', column: c.spec.name };
      else {
        cells.push('');
        continue;
      }
    }
    const r = cell(type, v);
    if ('reason' in r) return { reason: r.reason, column: c.spec.name };
    cells.push(r.cell);
  }
  return { row: cells.join(',') + '\n' };
}

// ---- generators ----
const num = fc.constantFrom(
  '0',
  '-0',
  '7',
  '-12',
  '1.50',
  '1e3',
  '2.5E-3',
  '9223372036854775807',
  '9223372036854775808',
  '-9223372036854775808',
  '1e308',
  '1e309',
  '253402300799',
  '1700000000',
  '0.1e309',
);
const p2 = (max: number): fc.Arbitrary<string> => fc.integer({ min: 0, max }).map((n) => pad(n));
/** Dates and datetimes around every boundary: day 29–31, hour 23–24, second 59–60, offsets. */
const dateText = fc
  .tuple(
    fc.constantFrom(1, 2, 1900, 2000, 2016, 2017, 9999),
    p2(13),
    fc.integer({ min: 0, max: 32 }),
  )
  .map(([y, m, d]) => `${pad(y, 4)}-${m}-${pad(d)}`);
const dateTimeText = fc
  .tuple(
    dateText,
    fc.constantFrom('T', ' ', 't'),
    p2(24),
    p2(60),
    p2(60),
    fc.option(fc.stringMatching(/^[0-9]{1,10}$/), { freq: 2 }),
    fc.option(
      fc.oneof(
        fc.constantFrom('Z', 'z', '-00:00'),
        fc
          .tuple(
            fc.constantFrom('+', '-'),
            fc.constantFrom('00', '01', '22', '23', '24'),
            fc.constantFrom('00', '30', '59', '60'),
          )
          .map(([sg, h, m]) => `${sg}${h}:${m}`),
      ),
      { freq: 2 },
    ),
  )
  .map(([d, t, h, mi, s, f, z]) => `${d}${t}${h}:${mi}:${s}${f === null ? '' : `.${f}`}${z ?? ''}`);
const strValue = fc.oneof(
  dateText,
  dateTimeText,
  dateTimeText,
  fc.constantFrom(
    '2024-02-29',
    '2023-02-29',
    '2017-01-01 00:00:00',
    '2017-01-01T23:30:00.123+01:00',
    '2016-12-31T23:59:59-23:59',
    '2017-01-01T24:00:00',
    '0001-01-01T00:00:00+00:01',
    'a,b',
    'say "hi"',
    'x\ny',
    '\ud800',
    'café',
    '',
    'true',
    '12',
  ),
  fc.string({ maxLength: 6 }),
);
const escape = (s: string, heavy: boolean): string =>
  heavy
    ? `"${[...s].map((ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')}"`
    : JSON.stringify(s);

const value: fc.Arbitrary<Value> = fc.letrec<{ v: Value }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    num.map((src): Value => ({ t: 'num', src })),
    fc.tuple(strValue, fc.boolean()).map(([s, heavy]): Value => ({
      t: 'str',
      value: s,
      src: lone(s) ? '"\\ud800"' : escape(s, heavy),
    })),
    fc.constantFrom('true', 'false', 'null').map((src): Value => ({ t: 'lit', src })),
    fc
      .array(fc.tuple(fc.constantFrom(...KEYS), fc.boolean(), tie('v')), { maxLength: 4 })
      .map((ms): Value => ({
        t: 'obj',
        members: ms.map(([k, heavy, x]) => [k, escape(k, heavy), x]),
      })),
    fc.array(tie('v'), { maxLength: 3 }).map((items): Value => ({ t: 'arr', items })),
  ),
})).v;

const record = fc
  .array(fc.tuple(fc.constantFrom(...KEYS), fc.boolean(), value), { maxLength: 6 })
  .map((ms): Value => ({ t: 'obj', members: ms.map(([k, heavy, x]) => [k, escape(k, heavy), x]) }));

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.constantFrom(...KEYS).map((key) => ({ key })),
  fc.integer({ min: 0, max: 2 }).map((index) => ({ index })),
);
const pathText = (steps: Step[]): string =>
  '$' +
  steps
    .map((s) =>
      'index' in s
        ? `[${s.index}]`
        : /^\w+$/.test(s.key)
          ? `.${s.key}`
          : `[${JSON.stringify(s.key)}]`,
    )
    .join('');

const column = fc.record({
  steps: fc.tuple(
    fc.constantFrom(...KEYS).map((key) => ({ key })),
    fc.array(step, { maxLength: 2 }),
  ),
  type: fc.constantFrom(...COLUMN_TYPES),
  nullable: fc.boolean(),
  withDefault: fc.option(
    value.filter((v) => v.t !== 'obj' && v.t !== 'arr' && text(v) !== 'null'),
    {
      freq: 3,
    },
  ),
});

describe('typed columns against a reference', () => {
  it('give the reference rows, reasons and columns over random schemas, records and chunkings', () => {
    fc.assert(
      fc.property(
        fc.array(column, { minLength: 1, maxLength: 5 }),
        fc.array(record, { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 8 }),
        (cols, records, cuts) => {
          const columns: Column[] = [];
          cols.forEach((c, i) => {
            const steps = [c.steps[0], ...c.steps[1]];
            const spec: ColumnSpec = {
              name: `c${i}`,
              path: pathText(steps),
              type: c.type,
              nullable: c.nullable,
            };
            let defaultValue: Value | undefined;
            if (c.withDefault !== null) {
              // Only defaults the type accepts: the service refuses the others at start-up.
              const r = cell(c.type, c.withDefault);
              if ('cell' in r) {
                defaultValue = c.withDefault;
                spec.defaultJson = text(c.withDefault);
              }
            }
            columns.push({ spec, steps, defaultValue });
          });
          const lines = records.map(text);
          for (const l of lines) JSON.parse(l); // the generator writes valid JSON
          const body = Buffer.from(lines.join('\n') + '\n');
          const got: string[] = [];
          const t = new NdjsonCsvTransform(
            { columns: columns.map((c) => c.spec), eol: 'lf', maxLineBytes: 1 << 20 },
            (line, reason, _raw, _n, col) => got.push(`${line}:${reason}:${col}`),
          );
          let at = 0;
          let k = 0;
          const out: Buffer[] = [];
          while (at < body.length) {
            const n = cuts[k++ % cuts.length];
            out.push(Buffer.from(t.push(body.subarray(at, at + n))));
            at += n;
          }
          out.push(Buffer.from(t.end()));
          const want: string[] = [];
          let rows = '';
          records.forEach((r, i) => {
            const ref = referenceRow(columns, r);
            if ('row' in ref) rows += ref.row;
            else want.push(`${i + 1}:${ref.reason}:${ref.column}`);
          });
          expect(Buffer.concat(out).toString()).toBe(rows);
          expect(got).toEqual(want);
        },
      ),
      { numRuns: 600 },
    );
  });
});
