/**
 * Typed columns and paths (SPEC §8): what each type accepts at its boundaries, and what each kind
 * of path step finds. Every case goes through the real transform (the WebAssembly kernel).
 */
import {
  NdjsonCsvTransform,
  cellOf,
  type InvalidReason,
} from '../../src/ingest/core/ndjson-csv.js';
import { parsePath, type ColumnSpec, type ColumnType } from '../../src/ingest/core/schema.js';

interface Outcome {
  cell?: string;
  reason?: InvalidReason;
  column?: string;
}

/** One line through a transform of `columns`; the row's text without its LF, or the reason. */
function run(columns: ColumnSpec[], line: string): Outcome {
  let outcome: Outcome | undefined;
  const t = new NdjsonCsvTransform(
    {
      columns,
      eol: 'lf',
      maxLineBytes: 1 << 20,
      meta: {
        requestId: 'req-1',
        receivedAt: new Date(Date.UTC(2026, 11, 6, 1, 2, 3, 45)),
        node: 'h1',
      },
    },
    (_line, reason, _raw, _bytes, column) => (outcome = { reason, column }),
  );
  const out = Buffer.concat([t.push(Buffer.from(line + '\n')), t.end()]).toString();
  return outcome ?? { cell: out.slice(0, -1) };
}

/** The cell of a JSON value in a column of `type`, or the reason it is refused. */
function typed(type: ColumnType, json: string): string {
  const o = run([{ name: 'v', type }], `{"v":${json}}`);
  return o.cell ?? `!${o.reason}`;
}

const M = '!type_mismatch';

describe('int', () => {
  it.each([
    ['0', '0'],
    ['-0', '-0'],
    ['42', '42'],
    ['9223372036854775807', '9223372036854775807'],
    ['-9223372036854775808', '-9223372036854775808'],
    ['9223372036854775808', M],
    ['-9223372036854775809', M],
    ['10000000000000000000', M],
    ['99999999999999999999', M],
    ['1.0', M],
    ['1e3', M],
    ['1E3', M],
    ['-1.5', M],
    ['"1"', M],
    ['true', M],
    ['[1]', M],
    ['{"a":1}', M],
  ])('%s → %s', (json, cell) => expect(typed('int', json)).toBe(cell));
});

describe('float', () => {
  it.each([
    ['1.50', '1.50'],
    ['-0', '-0'],
    ['1e308', '1e308'],
    ['-1e308', '-1e308'],
    ['1e309', M],
    ['-1e309', M],
    ['1.7976931348623157e308', '1.7976931348623157e308'],
    // The midpoint between the largest double and 2^1024 rounds to infinity; just below it does not.
    ['1.797693134862315807937289714053e308', '1.797693134862315807937289714053e308'],
    ['1.797693134862315807937289714053035e308', M],
    [(2n ** 1024n - 2n ** 970n).toString(), M],
    [(2n ** 1024n - 2n ** 970n).toString() + '.0000000001', M],
    ['1.797693134862315807937289714052e308', '1.797693134862315807937289714052e308'],
    [
      '179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559699508093042880177904174497791',
      '179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559699508093042880177904174497791',
    ],
    ['0.1e309', '0.1e309'],
    ['0.00001e313', '0.00001e313'],
    ['0.0001e313', M],
    ['1e-400', '1e-400'],
    ['0e999999999999', '0e999999999999'],
    ['12345678901234567890', '12345678901234567890'],
    ['"1.5"', M],
    ['false', M],
  ])('%s → %s', (json, cell) => {
    expect(typed('float', json)).toBe(cell);
    // The reference: JavaScript's own rounding of the decimal text.
    if (cell !== M) expect(Number.isFinite(Number(json))).toBe(true);
    else if (!json.startsWith('"') && json !== 'false')
      expect(Number.isFinite(Number(json))).toBe(false);
  });
});

describe('bool, string and json', () => {
  it.each([
    ['bool', 'true', 'true'],
    ['bool', 'false', 'false'],
    ['bool', '1', M],
    ['bool', '"true"', M],
    ['string', '"a,b"', '"a,b"'],
    ['string', '"say \\"hi\\""', '"say ""hi"""'],
    ['string', '"caf\\u00e9"', 'café'],
    ['string', '"\\ud800"', '!invalid_unicode'],
    ['string', '1', M],
    ['string', '{}', M],
    ['json', '"\\ud800"', '!invalid_unicode'],
    ['json', '{"a":"\\ud800"}', '"{""a"":""\\ud800""}"'],
    ['json', '[1,2]', '"[1,2]"'],
    ['json', '1e5', '1e5'],
  ] as [ColumnType, string, string][])('%s %s → %s', (type, json, cell) =>
    expect(typed(type, json)).toBe(cell),
  );
});

describe('date', () => {
  it.each([
    ['"2024-02-29"', '2024-02-29'],
    ['"2000-02-29"', '2000-02-29'],
    ['"1900-02-29"', M],
    ['"2023-02-29"', M],
    ['"2023-04-31"', M],
    ['"0001-01-01"', '0001-01-01'],
    ['"9999-12-31"', '9999-12-31'],
    ['"0000-12-31"', M],
    ['"2023-13-01"', M],
    ['"2023-00-10"', M],
    ['"2023-1-01"', M],
    ['"2023-01-01 "', M],
    ['"2023\\u002d01-01"', '2023-01-01'],
    ['20230101', M],
  ])('%s → %s', (json, cell) => expect(typed('date', json)).toBe(cell));
});

describe('datetime', () => {
  it.each([
    ['"2017-01-01 00:00:00"', '2017-01-01 00:00:00'],
    ['"2017-01-01T00:00:00"', '2017-01-01 00:00:00'],
    ['"2017-01-01T00:00:00Z"', '2017-01-01 00:00:00'],
    ['"2017-01-01t00:00:00"', M],
    ['"2017-01-01T00:00:00z"', M],
    ['"2017-01-01T24:00:00"', M],
    ['"2016-12-31T23:59:60Z"', M],
    ['"2017-01-01T23:60:00"', M],
    ['"2017-01-01T00:00:00.1"', '2017-01-01 00:00:00.1'],
    ['"2017-01-01T00:00:00.123456789"', '2017-01-01 00:00:00.123456789'],
    ['"2017-01-01T00:00:00.1234567890"', M],
    ['"2017-01-01T00:00:00."', M],
    // Offsets move the time across a day and a year boundary.
    ['"2017-01-01T00:30:00+01:00"', '2016-12-31 23:30:00'],
    ['"2016-12-31T23:30:00.5-00:45"', '2017-01-01 00:15:00.5'],
    ['"2017-01-01T00:00:00+23:59"', '2016-12-31 00:01:00'],
    ['"2017-01-01T00:00:00-23:59"', '2017-01-01 23:59:00'],
    ['"2017-01-01T00:00:00-00:00"', '2017-01-01 00:00:00'],
    ['"2017-01-01T00:00:00+24:00"', M],
    ['"2017-01-01T00:00:00+01:60"', M],
    ['"2017-01-01T00:00:00+0100"', M],
    ['"2016-02-29T12:00:00"', '2016-02-29 12:00:00'],
    ['"2015-02-29T12:00:00"', M],
    ['"2024-03-01T00:00:00+00:01"', '2024-02-29 23:59:00'],
    // The year range applies after the offset.
    ['"0001-01-01T00:00:00+00:01"', M],
    ['"0001-01-01T00:00:00-00:01"', '0001-01-01 00:01:00'],
    ['"9999-12-31T23:59:59-00:01"', M],
    ['"9999-12-31T23:59:59+00:01"', '9999-12-31 23:58:59'],
    // Unix seconds, at both bounds.
    ['0', '1970-01-01 00:00:00'],
    ['1700000000', '2023-11-14 22:13:20'],
    ['253402300799', '9999-12-31 23:59:59'],
    ['253402300800', M],
    ['-1', M],
    ['1.5', M],
    ['1e9', M],
    ['true', M],
    ['"2017-01-01"', M],
  ])('%s → %s', (json, cell) => expect(typed('datetime', json)).toBe(cell));
});

describe('missing, null, nullable and default', () => {
  const line = '{"a":null}';
  it.each([
    [{ name: 'a', type: 'int' }, ''],
    [{ name: 'b', type: 'int' }, ''],
    [{ name: 'a', type: 'json', nullable: false }, '!missing_value'],
    [{ name: 'b', type: 'date', nullable: false }, '!missing_value'],
    [{ name: 'a', type: 'int', nullable: false, defaultJson: '7' }, '7'],
    [{ name: 'b', type: 'string', defaultJson: '"n/a, none"' }, '"n/a, none"'],
    [{ name: 'b', type: 'datetime', defaultJson: '0' }, '1970-01-01 00:00:00'],
  ] as [ColumnSpec, string][])('%j → %s', (spec, cell) => {
    const o = run([spec], line);
    expect(o.cell ?? `!${o.reason}`).toBe(cell);
    if (o.reason !== undefined) expect(o.column).toBe(spec.name);
  });

  it('reports the first failing column, in column order', () => {
    const o = run(
      [
        { name: 'ok', path: '$.a', type: 'int' },
        { name: 'first', path: '$.b', type: 'int' },
        { name: 'second', path: '$.c', nullable: false },
      ],
      '{"a":1,"c":null,"b":"x"}',
    );
    expect(o).toEqual({ reason: 'type_mismatch', column: 'first' });
  });

  it('puts line-level reasons before column-level ones', () => {
    expect(run([{ name: 'a', type: 'int' }], '{"a":"x",}').reason).toBe('invalid_json');
    expect(run([{ name: 'a', type: 'int' }], '["x"]').reason).toBe('not_object');
  });

  it('writes a default as the type writes the same value (cellOf)', () => {
    expect(cellOf('float', '1.5').toString()).toBe('1.5');
    expect(cellOf('string', '"a\\"b"').toString()).toBe('"a""b"');
    expect(() => cellOf('int', '"1"')).toThrow('type_mismatch');
  });
});

describe('meta columns', () => {
  it('writes request_id, received_at, line and node', () => {
    const columns: ColumnSpec[] = [
      { name: 'rid', meta: 'request_id' },
      { name: 'at', meta: 'received_at' },
      { name: 'n', meta: 'line' },
      { name: 'host', meta: 'node' },
      { name: 'a', type: 'int' },
    ];
    const t = new NdjsonCsvTransform({
      columns,
      eol: 'lf',
      maxLineBytes: 1024,
      meta: {
        requestId: 'r"1',
        receivedAt: new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 6)),
        node: 'h1',
      },
    });
    const out = Buffer.concat([t.push(Buffer.from('{"a":1}\n\n{"a":2}\n')), t.end()]).toString();
    expect(out).toBe(
      '"r""1",2026-01-02 03:04:05.006,1,h1,1\n"r""1",2026-01-02 03:04:05.006,3,h1,2\n',
    );
  });
});

describe('paths', () => {
  const c = (path: string, type: ColumnType = 'json'): ColumnSpec[] => [{ name: 'v', path, type }];
  it.each([
    ['$.a.b', '{"a":{"b":1}}', '1'],
    ['$.a.b', '{"a":{}}', ''],
    ['$.a.b.c', '{"x":1}', ''], // missing intermediate
    ['$.a.b', '{"a":1}', ''], // a step into a scalar
    ['$.a.b', '{"a":"str"}', ''],
    ['$.a.b', '{"a":[{"b":1}]}', ''], // a key step on an array
    ['$.a[0]', '{"a":{"0":1}}', ''], // an index step on an object
    ['$.a[1]', '{"a":[1]}', ''], // index out of range
    ['$.a[1]', '{"a":[1,[2,3]]}', '"[2,3]"'],
    ['$.a[1][0]', '{"a":[1,[2,3]]}', '2'],
    ['$.a[0].b', '{"a":[{"b":"x"},{"b":"y"}]}', 'x'],
    ['$["a b"]', '{"a b":1}', '1'],
    ['$["a\\"b"]', '{"a\\"b":1}', '1'],
    ['$["é"]', '{"\\u00e9":1}', '1'], // escaped keys unescape to the path's key
    ['$.ab', '{"\\u0061b":1}', '1'],
    ['$["\\u0061"]', '{"a":1}', '1'],
    // Duplicate keys at depth 2: the last one wins, also when it drops a member.
    ['$.a.b', '{"a":{"b":1,"b":2}}', '2'],
    ['$.a.b', '{"a":{"b":1},"a":{"c":2}}', ''],
    ['$.a.b', '{"a":{"b":1},"a":3}', ''],
  ])('%s of %s → %j', (path, line, cell) => expect(run(c(path), line).cell).toBe(cell));

  it('validates the whole line, also inside a path', () => {
    expect(run(c('$.a.b'), '{"a":{"b":1,}}').reason).toBe('invalid_json');
    expect(run(c('$.a[0]'), '{"a":[1 2]}').reason).toBe('invalid_json');
    expect(run(c('$.a.b'), '{"a":{"b":01}}').reason).toBe('invalid_json');
  });

  it('lets a path and a path inside its value both be columns', () => {
    const columns: ColumnSpec[] = [
      { name: 'whole', path: '$.a' },
      { name: 'part', path: '$.a.b', type: 'int' },
      { name: 'again', path: '$.a.b' },
    ];
    expect(run(columns, '{"a":{"b":5}}').cell).toBe('"{""b"":5}",5,5');
  });

  it.each([
    ['$', '$ alone'],
    ['a.b', 'starts with $'],
    ['$.', 'expected a name'],
    ['$.1a', 'expected a name'],
    ['$[01]', 'expected ["key"] or [N]'],
    ['$[ 1]', 'expected ["key"] or [N]'],
    ['$["a"', 'unterminated'],
    ['$["\\x"]', 'not a JSON string literal'],
    ['$["\\ud800"]', 'lone surrogate'],
    ['$.a b', 'unexpected'],
  ])('refuses the path %s', (path, message) => expect(() => parsePath(path)).toThrow(message));

  it('parses each kind of step', () => {
    expect(parsePath('$.a["b c"][0][12]._x')).toEqual([
      { key: 'a' },
      { key: 'b c' },
      { index: 0 },
      { index: 12 },
      { key: '_x' },
    ]);
  });
});
