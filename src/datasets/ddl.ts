/**
 * `CREATE TABLE` and load statements for a dataset's day files (`npm run datasets -- ddl`), so a
 * reader loads every row with its declared type without cleaning (SPEC §8). The CSV rules these
 * rely on: RFC 4180 quoting with `"` doubled, an empty cell is a missing value, the header row
 * only with `header: true`.
 */
import type { ColumnSpec } from '../ingest/core/schema.js';
import type { Dataset } from './datasets-file.js';

export type Dialect = 'duckdb' | 'clickhouse';

const DUCKDB: Record<string, string> = {
  json: 'VARCHAR',
  string: 'VARCHAR',
  int: 'BIGINT',
  float: 'DOUBLE',
  bool: 'BOOLEAN',
  date: 'DATE',
  // Years 0001–9999 need TIMESTAMP (TIMESTAMP_NS ends in 2262); it keeps 6 of the up to 9
  // fraction digits a cell may carry, and drops the rest on load.
  datetime: 'TIMESTAMP',
  request_id: 'VARCHAR',
  received_at: 'TIMESTAMP',
  line: 'BIGINT',
  node: 'VARCHAR',
};

const CLICKHOUSE: Record<string, string> = {
  json: 'String',
  string: 'String',
  int: 'Int64',
  float: 'Float64',
  bool: 'Bool',
  date: 'Date32',
  datetime: "DateTime64(9, 'UTC')",
  request_id: 'String',
  received_at: "DateTime64(3, 'UTC')",
  line: 'UInt64',
  node: 'String',
};

function kind(c: ColumnSpec): string {
  return c.meta ?? c.type ?? 'json';
}

/**
 * A column that can never be empty: a typed value that is not nullable, or has a default, or a
 * meta column. Strings are left nullable: an empty string is written as an empty cell, which
 * readers load as NULL.
 */
function neverEmpty(c: ColumnSpec): boolean {
  if (c.meta !== undefined) return true;
  const t = c.type ?? 'json';
  if (t === 'json' || t === 'string') return false;
  return c.nullable === false || c.defaultJson !== undefined;
}

/** Single-quoted SQL string literal. */
function lit(s: string): string {
  return `'${s.replaceAll("'", "''")}'`;
}

function ident(s: string): string {
  return `"${s.replaceAll('"', '""')}"`;
}

/** The glob of a dataset's day files in `dir` (with or without NODE_NAME), not its quarantine. */
export function dayFilesGlob(dataset: Dataset, dir: string): string {
  return `${dir.replace(/\/$/, '')}/${dataset.prefix}-????-??-??*.csv`;
}

export function ddl(dataset: Dataset, dialect: Dialect, dir = 'csv'): string {
  const glob = dayFilesGlob(dataset, dir);
  if (dialect === 'duckdb') {
    const cols = dataset.specs.map(
      (c) => `  ${ident(c.name)} ${DUCKDB[kind(c)]}${neverEmpty(c) ? ' NOT NULL' : ''}`,
    );
    const types = dataset.specs.map((c) => `${lit(c.name)}: ${lit(DUCKDB[kind(c)])}`).join(', ');
    return (
      `CREATE TABLE ${ident(dataset.name)} (\n${cols.join(',\n')}\n);\n` +
      `INSERT INTO ${ident(dataset.name)} SELECT * FROM read_csv(${lit(glob)}, ` +
      `header = ${dataset.header}, auto_detect = false, delim = ',', quote = '"', escape = '"', ` +
      `nullstr = '', columns = {${types}});\n`
    );
  }
  const cols = dataset.specs.map((c) => {
    const t = CLICKHOUSE[kind(c)];
    return `  ${ident(c.name)} ${neverEmpty(c) ? t : `Nullable(${t})`}`;
  });
  const format = dataset.header ? 'CSVWithNames' : 'CSV';
  return (
    `CREATE TABLE ${ident(dataset.name)} (\n${cols.join(',\n')}\n) ENGINE = MergeTree ORDER BY tuple();\n` +
    `-- clickhouse-client, from the folder that holds ${dir}:\n` +
    `INSERT INTO ${ident(dataset.name)} FROM INFILE ${lit(glob)} ` +
    `SETTINGS input_format_csv_empty_as_default = 0, format_csv_null_representation = '' FORMAT ${format};\n`
  );
}
