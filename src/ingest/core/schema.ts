/**
 * What the kernel keeps of a line, decided once per dataset (SPEC §8): JSONPaths turned into a
 * trie of steps whose leaves are value slots, and columns that write a slot with a type, a
 * default, or a meta value. Framework-free, like the transform it feeds.
 *
 * The trie is what lets the kernel stay one pass: a member of the line's object is looked up among
 * the root's steps (the learned-shape match of kernel/scan.ts caches that per position), and only
 * a member some path goes on into is scanned member by member; every other value is skipped by
 * the plain validator.
 */

export const COLUMN_TYPES = ['json', 'string', 'int', 'float', 'bool', 'date', 'datetime'] as const;
export type ColumnType = (typeof COLUMN_TYPES)[number];
export const META_KINDS = ['request_id', 'received_at', 'line', 'node'] as const;
export type MetaKind = (typeof META_KINDS)[number];

/** One column: a path with a type, or a meta value. */
export interface ColumnSpec {
  name: string;
  /** JSONPath; default `$.` + name (for names that are identifiers) or `$["name"]`. */
  path?: string;
  type?: ColumnType;
  /** Default true: a missing or null value gives an empty cell (false: `missing_value`). */
  nullable?: boolean;
  /** The cell of a missing or null value, as the JSON text of a value of the column's type. */
  defaultJson?: string;
  meta?: MetaKind;
}

/** A path step: a member key or an array index. */
export type PathStep = { key: string } | { index: number };

export class PathError extends Error {}

const IDENT = /[A-Za-z_][A-Za-z0-9_]*/y;
const INDEX = /(0|[1-9][0-9]*)\]/y;
export const MAX_PATH_STEPS = 32;

/** Parses `$` then steps `.name`, `["…"]` (a JSON string literal) or `[N]` (SPEC §8). */
export function parsePath(path: string): PathStep[] {
  if (!path.startsWith('$')) throw new PathError('a path starts with $');
  const steps: PathStep[] = [];
  let i = 1;
  while (i < path.length) {
    if (path[i] === '.') {
      IDENT.lastIndex = i + 1;
      const m = IDENT.exec(path);
      if (m === null) throw new PathError(`expected a name after "." at offset ${i}`);
      steps.push({ key: m[0] });
      i = IDENT.lastIndex;
    } else if (path.startsWith('["', i)) {
      let j = i + 2;
      while (j < path.length && path[j] !== '"') j += path[j] === '\\' ? 2 : 1;
      if (j >= path.length || path[j + 1] !== ']') {
        throw new PathError(`unterminated ["…"] step at offset ${i}`);
      }
      let key: string;
      try {
        key = JSON.parse(path.slice(i + 1, j + 1)) as string;
      } catch {
        throw new PathError(`the key at offset ${i} is not a JSON string literal`);
      }
      if (/\p{Cs}/u.test(key)) throw new PathError(`the key at offset ${i} has a lone surrogate`);
      steps.push({ key });
      i = j + 2;
    } else if (path[i] === '[') {
      INDEX.lastIndex = i + 1;
      const m = INDEX.exec(path);
      if (m === null) throw new PathError(`expected ["key"] or [N] at offset ${i}`);
      const index = Number(m[1]);
      if (index > 2 ** 31 - 1) throw new PathError(`index ${m[1]} is too large`);
      steps.push({ index });
      i = INDEX.lastIndex;
    } else {
      throw new PathError(`unexpected "${path[i]}" at offset ${i}`);
    }
    if (steps.length > MAX_PATH_STEPS) throw new PathError(`more than ${MAX_PATH_STEPS} steps`);
  }
  if (steps.length === 0) throw new PathError('$ alone is not a path: add a step, as in $.name');
  return steps;
}

/** The path of a column without one. */
export function defaultPath(name: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name) ? `$.${name}` : `$[${JSON.stringify(name)}]`;
}

// Kernel type codes (kernel/scan.ts T_*).
const TYPE_CODES: Record<ColumnType, number> = {
  json: 0,
  string: 1,
  int: 2,
  float: 3,
  bool: 4,
  date: 5,
  datetime: 6,
};
export const T_FIXED = 7;
export const T_LINE = 8;
export const F_NOT_NULL = 1;
export const F_DEFAULT = 2;

export interface CompiledEntry {
  key: Buffer | null;
  index: number;
  slot: number;
  child: number;
}

export interface CompiledNode {
  first: number;
  count: number;
  lo: number;
  hi: number;
}

export interface CompiledColumn {
  name: string;
  type: number;
  slot: number;
  flags: number;
  /** The default's cell (written at instance creation). */
  fixed: Buffer | null;
  meta: MetaKind | undefined;
}

/** The kernel's tables for one dataset (see kernel/scan.ts for their meaning). */
export interface CompiledSchema {
  /** Pool key: equal schemas share kernel instances. */
  key: string;
  columns: CompiledColumn[];
  entries: CompiledEntry[];
  nodes: CompiledNode[];
  slots: number;
  spanFactor: number;
  fixedBound: number;
  /** Some column is a meta value taken from the request (request_id, received_at, node). */
  metaColumns: boolean;
}

/** Longest meta value a fixed cell may hold (longer request ids are cut in the error). */
export const MAX_META_BYTES = 1024;

interface TrieNode {
  /** Key steps by key, index steps by index, in first-seen order. */
  steps: Map<string, TrieStep>;
}
interface TrieStep {
  step: PathStep;
  slot: number;
  child: TrieNode | null;
}

/**
 * Builds the kernel's tables. `defaults` turns a column's default JSON text into its cell (the
 * kernel itself does that: see NdjsonCsvTransform.cellOf), or throws.
 */
export function compileSchema(
  specs: readonly ColumnSpec[],
  defaultCell: (spec: ColumnSpec) => Buffer,
): CompiledSchema {
  if (specs.length === 0) throw new Error('at least one column is required');
  if (specs.length > 1024) throw new Error('at most 1024 columns');
  const root: TrieNode = { steps: new Map() };
  const leafOf: (TrieStep | null)[] = [];
  for (const spec of specs) {
    if (spec.meta !== undefined) {
      leafOf.push(null);
      continue;
    }
    let node = root;
    let leaf: TrieStep | null = null;
    const steps = parsePath(spec.path ?? defaultPath(spec.name));
    steps.forEach((step, i) => {
      const id = 'key' in step ? `k${step.key}` : `i${step.index}`;
      let s = node.steps.get(id);
      if (s === undefined) {
        s = { step, slot: -1, child: null };
        node.steps.set(id, s);
      }
      if (i === steps.length - 1) {
        leaf = s;
      } else {
        s.child ??= { steps: new Map() };
        node = s.child;
      }
    });
    leafOf.push(leaf);
  }

  // Flatten breadth-first so a node's entries are contiguous and the root's come first; value
  // slots are numbered depth-first so each subtree's slots are one range.
  const entries: CompiledEntry[] = [];
  const nodes: CompiledNode[] = [];
  // Each node's subtree slots [lo, hi), as the depth-first numbering meets them.
  const ranges = new Map<TrieNode, { lo: number; hi: number }>();
  let slots = 0;
  const numberSlots = (node: TrieNode): void => {
    const lo = slots;
    for (const s of node.steps.values()) {
      if (leafOf.includes(s)) s.slot = slots++;
      if (s.child !== null) numberSlots(s.child);
    }
    ranges.set(node, { lo, hi: slots });
  };
  numberSlots(root);
  const queue: TrieNode[] = [root];
  const nodeIds = new Map<TrieNode, number>([[root, 0]]);
  while (queue.length > 0) {
    const node = queue.shift()!;
    const first = entries.length;
    for (const s of node.steps.values()) {
      let child = -1;
      if (s.child !== null) {
        child = nodeIds.size;
        nodeIds.set(s.child, child);
        queue.push(s.child);
      }
      entries.push({
        key: 'key' in s.step ? Buffer.from(s.step.key, 'utf8') : null,
        index: 'index' in s.step ? s.step.index : -1,
        slot: s.slot,
        child,
      });
    }
    nodes[nodeIds.get(node)!] = { first, count: entries.length - first, ...ranges.get(node)! };
  }
  if (entries.length > 2048) throw new Error('at most 2048 path steps in all');
  if (nodes.length > 1024) throw new Error('at most 1024 nested members on paths');
  const keyBytes = entries.reduce((n, e) => n + (e.key?.length ?? 0), 0);
  if (keyBytes > 60000) throw new Error('path keys too long (60,000 bytes in all at most)');

  const columns: CompiledColumn[] = specs.map((spec, i) => {
    const leaf = leafOf[i];
    if (spec.meta !== undefined) {
      return {
        name: spec.name,
        type: spec.meta === 'line' ? T_LINE : T_FIXED,
        slot: -1,
        flags: 0,
        fixed: null,
        meta: spec.meta,
      };
    }
    const type = spec.type ?? 'json';
    const fixed = spec.defaultJson === undefined ? null : defaultCell(spec);
    return {
      name: spec.name,
      type: TYPE_CODES[type],
      slot: leaf!.slot,
      flags: (spec.nullable === false ? F_NOT_NULL : 0) | (fixed !== null ? F_DEFAULT : 0),
      fixed,
      meta: undefined,
    };
  });
  const fixedBytes = columns.reduce((n, c) => n + (c.fixed?.length ?? 0), 0);
  if (fixedBytes > 32768) throw new Error('defaults too long (32,768 bytes in all at most)');

  // A byte of a line is written by more than one column when two columns share a path or one's
  // path is inside another's value: then bound the row by all of them.
  const uses = new Map<number, number>();
  for (const c of columns) if (c.slot >= 0) uses.set(c.slot, (uses.get(c.slot) ?? 0) + 1);
  const nested = entries.some((e) => e.slot >= 0 && e.child >= 0);
  const shared = [...uses.values()].some((n) => n > 1);
  const pathColumns = columns.filter((c) => c.slot >= 0).length;
  const spanFactor = nested || shared ? Math.max(1, pathColumns) : 1;
  // Beyond the spans: defaults, meta values (quoted, so 2× + 2), datetimes from Unix seconds
  // (29 bytes from 1), line numbers.
  const fixedBound = columns.reduce(
    (n, c) => n + (c.fixed?.length ?? 0) + (c.meta !== undefined ? 2 * MAX_META_BYTES + 2 : 0) + 32,
    0,
  );
  const key = JSON.stringify([
    columns.map((c) => [c.type, c.slot, c.flags, c.fixed?.toString('base64') ?? null]),
    entries.map((e) => [e.key?.toString('base64') ?? null, e.index, e.slot, e.child]),
    nodes,
  ]);
  return {
    key,
    columns,
    entries,
    nodes,
    slots,
    spanFactor,
    fixedBound,
    metaColumns: columns.some((c) => c.type === T_FIXED),
  };
}
