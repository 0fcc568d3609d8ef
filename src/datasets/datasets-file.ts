/**
 * The datasets file (DATASETS_FILE, SPEC §8): YAML 1.2 (so JSON too), parsed by `yaml`, checked
 * whole at start-up. Every error names the file, the dataset and the field, and the service does
 * not start. Nothing here runs per request: a Dataset carries the column array the transform
 * compiles once and caches.
 */
import { readFileSync } from 'node:fs';
import { isMap, isScalar, isSeq, parseDocument, type Node as YamlNode } from 'yaml';
import { CellError, cellOf } from '../ingest/core/ndjson-csv.js';
import {
  COLUMN_TYPES,
  META_KINDS,
  PathError,
  defaultPath,
  parsePath,
  type ColumnSpec,
  type ColumnType,
  type MetaKind,
} from '../ingest/core/schema.js';

export interface Dataset {
  name: string;
  /** File name prefix of its day files, quarantine and lock. */
  prefix: string;
  eol: 'crlf' | 'lf';
  /** Write the header row in the commit that writes a file's first rows. */
  header: boolean;
  /** Tokens that may append to this dataset only (SPEC §3). */
  tokens: string[];
  /** The transform's columns: top-level field names (no datasets file) or column specs. */
  columns: readonly (string | ColumnSpec)[];
  /** Column names, in order (the header and the DDL). */
  columnNames: string[];
  /** Column specs, with each path and type filled in (for the DDL and the docs). */
  specs: ColumnSpec[];
}

export interface DatasetsDefinition {
  datasets: Dataset[];
  /** The dataset of `POST /` and `POST /ingest`. */
  defaultName: string;
}

/** A datasets file that cannot be used: the message names the file, the dataset and the field. */
export class DatasetsFileError extends Error {
  constructor(
    readonly file: string,
    readonly where: string,
    detail: string,
  ) {
    super(`DATASETS_FILE ${file}: ${where}${where === '' ? '' : ': '}${detail}`);
    this.name = 'DatasetsFileError';
  }
}

export const DATASET_NAME = /^[a-z][a-z0-9_]{0,63}$/;
export const PREFIX = /^[A-Za-z0-9_.-]{1,64}$/;
export const COLUMN_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const TOKEN = /^[\x21-\x7e]+$/;

/** The dataset of a configuration without a datasets file: today's one pipe (SPEC §8). */
export function legacyDataset(prefix: string, columns: string[], eol: 'crlf' | 'lf'): Dataset {
  return {
    name: prefix,
    prefix,
    eol,
    header: false,
    tokens: [],
    columns,
    columnNames: columns,
    specs: columns.map((name) => ({ name, path: defaultPath(name), type: 'json' })),
  };
}

/** Reads and checks a datasets file; throws DatasetsFileError. */
export function loadDatasetsFile(file: string, defaultEol: 'crlf' | 'lf'): DatasetsDefinition {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new DatasetsFileError(file, '', `cannot be read (${(err as Error).message})`);
  }
  return parseDatasets(text, file, defaultEol);
}

export function parseDatasets(
  text: string,
  file: string,
  defaultEol: 'crlf' | 'lf',
): DatasetsDefinition {
  const doc = parseDocument(text, { version: '1.2', intAsBigInt: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const at = e.linePos?.[0];
    throw new DatasetsFileError(
      file,
      at === undefined ? '' : `line ${at.line}, column ${at.col}`,
      `not valid YAML: ${e.message.split('\n')[0]}`,
    );
  }
  const fail = (where: string, detail: string): never => {
    throw new DatasetsFileError(file, where, detail);
  };
  const root = doc.contents;
  if (!isMap(root)) fail('', 'must be a mapping with "datasets" (and optionally "default")');
  const top = entries(root as YamlNode, '', fail);
  for (const key of top.keys()) {
    if (key !== 'datasets' && key !== 'default') {
      fail(key, 'unknown key (expected "datasets" and optionally "default")');
    }
  }
  const datasetsNode = top.get('datasets');
  if (datasetsNode === undefined || !isMap(datasetsNode)) {
    fail('datasets', 'must be a mapping of dataset names to datasets');
  }
  const datasets: Dataset[] = [];
  const prefixes = new Map<string, string>();
  for (const [name, node] of entries(datasetsNode!, 'datasets', fail)) {
    const where = `dataset "${name}"`;
    if (!DATASET_NAME.test(name)) fail(where, 'the name must match [a-z][a-z0-9_]{0,63}');
    const dataset = readDataset(name, node, where, defaultEol, fail);
    const other = prefixes.get(dataset.prefix);
    if (other !== undefined) {
      fail(`${where}, prefix`, `"${dataset.prefix}" is also the prefix of dataset "${other}"`);
    }
    prefixes.set(dataset.prefix, name);
    datasets.push(dataset);
  }
  if (datasets.length === 0) fail('datasets', 'must hold at least one dataset');
  let defaultName = datasets[0].name;
  const defaultNode = top.get('default');
  if (defaultNode !== undefined) {
    const value = scalar(defaultNode, 'default', fail);
    if (typeof value !== 'string' || !datasets.some((d) => d.name === value)) {
      fail('default', `must name one of the datasets (${datasets.map((d) => d.name).join(', ')})`);
    }
    defaultName = value as string;
  }
  return { datasets, defaultName };
}

type Fail = (where: string, detail: string) => never;

function entries(node: YamlNode, where: string, fail: Fail): Map<string, YamlNode> {
  const out = new Map<string, YamlNode>();
  if (!isMap(node)) fail(where, 'must be a mapping');
  for (const pair of (node as unknown as { items: { key: unknown; value: unknown }[] }).items) {
    const key = isScalar(pair.key) ? pair.key.value : pair.key;
    if (typeof key !== 'string') fail(where, `keys must be strings, got ${String(key)}`);
    out.set(key as string, pair.value as YamlNode);
  }
  return out;
}

function scalar(node: YamlNode | null | undefined, where: string, fail: Fail): unknown {
  if (node === null || node === undefined) return null;
  if (!isScalar(node)) fail(where, 'must be a scalar');
  return (node as { value: unknown }).value;
}

function readDataset(
  name: string,
  node: YamlNode,
  where: string,
  defaultEol: 'crlf' | 'lf',
  fail: Fail,
): Dataset {
  const fields = entries(node, where, fail);
  const known = ['prefix', 'eol', 'header', 'tokens', 'columns'];
  for (const key of fields.keys()) {
    if (!known.includes(key))
      fail(`${where}, ${key}`, `unknown key (expected ${known.join(', ')})`);
  }
  const prefix = fields.has('prefix')
    ? scalar(fields.get('prefix'), `${where}, prefix`, fail)
    : name;
  if (typeof prefix !== 'string' || !PREFIX.test(prefix)) {
    fail(`${where}, prefix`, 'must match [A-Za-z0-9_.-]{1,64}');
  }
  const eol = fields.has('eol') ? scalar(fields.get('eol'), `${where}, eol`, fail) : defaultEol;
  if (eol !== 'crlf' && eol !== 'lf') fail(`${where}, eol`, 'must be crlf or lf');
  const header = fields.has('header')
    ? scalar(fields.get('header'), `${where}, header`, fail)
    : false;
  if (typeof header !== 'boolean') fail(`${where}, header`, 'must be true or false');
  const tokens: string[] = [];
  const tokensNode = fields.get('tokens');
  if (tokensNode !== undefined && tokensNode !== null) {
    if (!isSeq(tokensNode)) fail(`${where}, tokens`, 'must be a list of tokens');
    (tokensNode as unknown as { items: YamlNode[] }).items.forEach((item, i) => {
      const t = scalar(item, `${where}, tokens[${i}]`, fail);
      if (typeof t !== 'string' || !TOKEN.test(t)) {
        fail(`${where}, tokens[${i}]`, 'must be printable ASCII without spaces');
      }
      tokens.push(t as string);
    });
  }
  const columnsNode = fields.get('columns');
  if (columnsNode === undefined || !isSeq(columnsNode)) {
    fail(`${where}, columns`, 'must be a list of at least one column');
  }
  const items = (columnsNode as unknown as { items: YamlNode[] }).items;
  if (items.length === 0) fail(`${where}, columns`, 'must be a list of at least one column');
  if (items.length > 1024) fail(`${where}, columns`, 'at most 1024 columns');
  const specs: ColumnSpec[] = [];
  const names = new Set<string>();
  items.forEach((item, i) => {
    const spec = readColumn(item, `${where}, columns[${i}]`, fail);
    if (names.has(spec.name)) fail(`${where}, columns[${i}], name`, `"${spec.name}" is used twice`);
    names.add(spec.name);
    specs.push(spec);
  });
  return {
    name,
    prefix: prefix as string,
    eol: eol as 'crlf' | 'lf',
    header: header as boolean,
    tokens,
    columns: specs,
    columnNames: specs.map((s) => s.name),
    specs,
  };
}

function readColumn(node: YamlNode, where: string, fail: Fail): ColumnSpec {
  const fields = entries(node, where, fail);
  const known = ['name', 'path', 'type', 'nullable', 'default', 'meta'];
  for (const key of fields.keys()) {
    if (!known.includes(key))
      fail(`${where}, ${key}`, `unknown key (expected ${known.join(', ')})`);
  }
  const name = scalar(fields.get('name'), `${where}, name`, fail);
  if (typeof name !== 'string' || !COLUMN_NAME.test(name)) {
    fail(`${where}, name`, 'is required and must match [A-Za-z_][A-Za-z0-9_]{0,63}');
  }
  const at = `${where} (${name as string})`;
  if (fields.has('meta')) {
    const meta = scalar(fields.get('meta'), `${at}, meta`, fail);
    if (!META_KINDS.includes(meta as MetaKind)) {
      fail(`${at}, meta`, `must be one of ${META_KINDS.join(', ')}`);
    }
    for (const key of ['path', 'type', 'nullable', 'default']) {
      if (fields.has(key))
        fail(`${at}, ${key}`, 'a meta column has no path, type, nullable or default');
    }
    return { name: name as string, meta: meta as MetaKind };
  }
  const path = fields.has('path')
    ? scalar(fields.get('path'), `${at}, path`, fail)
    : defaultPath(name as string);
  if (typeof path !== 'string') fail(`${at}, path`, 'must be a JSONPath string such as $.a.b');
  try {
    parsePath(path as string);
  } catch (err) {
    if (err instanceof PathError)
      fail(`${at}, path`, `"${path as string}" is not a path: ${err.message}`);
    throw err;
  }
  const type = fields.has('type') ? scalar(fields.get('type'), `${at}, type`, fail) : 'json';
  if (!COLUMN_TYPES.includes(type as ColumnType)) {
    fail(`${at}, type`, `must be one of ${COLUMN_TYPES.join(', ')}`);
  }
  const nullable = fields.has('nullable')
    ? scalar(fields.get('nullable'), `${at}, nullable`, fail)
    : true;
  if (typeof nullable !== 'boolean') fail(`${at}, nullable`, 'must be true or false');
  const spec: ColumnSpec = {
    name: name as string,
    path: path as string,
    type: type as ColumnType,
    nullable: nullable as boolean,
  };
  if (fields.has('default')) {
    const node = fields.get('default');
    if (node !== null && node !== undefined && !isScalar(node)) {
      fail(`${at}, default`, 'must be a scalar (a string, number or boolean; null for none)');
    }
    const value = scalar(node, `${at}, default`, fail);
    if (value !== null) {
      spec.defaultJson = jsonOfScalar(value, `${at}, default`, fail);
      try {
        cellOf(spec.type!, spec.defaultJson);
      } catch (err) {
        if (err instanceof CellError) {
          fail(
            `${at}, default`,
            `${spec.defaultJson} is not accepted by type ${spec.type!} (${err.reason})`,
          );
        }
        throw err;
      }
    }
  }
  return spec;
}

/**
 * The JSON text of a YAML scalar default: a string as a JSON string, an int as written, a float
 * as the shortest text that reads back as the same double (SPEC §8), a boolean.
 */
function jsonOfScalar(value: unknown, where: string, fail: Fail): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'boolean') return String(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) fail(where, 'must be a finite number');
    return Object.is(value, -0) ? '-0' : String(value);
  }
  return fail(where, 'must be a string, number or boolean');
}
