/**
 * Reading ops/grafana/ndjson-ingest.dashboard.json: its panels (rows flattened), the PromQL of
 * every target and variable, and the metric names a PromQL expression selects.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DASHBOARD_PATH = join(ROOT, 'ops', 'grafana', 'ndjson-ingest.dashboard.json');

export interface Target {
  expr: string;
  legendFormat?: string;
  refId: string;
  datasource?: { type?: string; uid?: string };
}
export interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string };
  gridPos: { h: number; w: number; x: number; y: number };
  targets?: Target[];
  panels?: Panel[];
  fieldConfig?: { defaults?: { unit?: string } };
}
export interface Variable {
  name: string;
  type: string;
  query: string | { query: string };
  datasource?: { type?: string; uid?: string };
}
export interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  __inputs?: { name: string; type: string; pluginId: string }[];
  panels: Panel[];
  templating: { list: Variable[] };
}

export function loadDashboard(path = DASHBOARD_PATH): Dashboard {
  return JSON.parse(readFileSync(path, 'utf8')) as Dashboard;
}

/** Every panel, including those inside (collapsed) rows. */
export function allPanels(d: Dashboard): Panel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

export function variableQuery(v: Variable): string {
  return typeof v.query === 'string' ? v.query : v.query.query;
}

/** Every PromQL expression: panel targets and query variables. */
export function allQueries(d: Dashboard): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const p of allPanels(d)) {
    for (const t of p.targets ?? []) out.push({ where: `${p.title} / ${t.refId}`, expr: t.expr });
  }
  for (const v of d.templating.list) {
    if (v.type === 'query') out.push({ where: `variable ${v.name}`, expr: variableQuery(v) });
  }
  return out;
}

/** Grafana's `label_values(selector, label)` → `selector`; anything else unchanged. */
export function promqlOf(expr: string): string {
  const m = /^\s*label_values\((.*),\s*[A-Za-z_][\w]*\s*\)\s*$/s.exec(expr);
  return m ? m[1] : expr;
}

/** Replaces dashboard variables with values PromQL accepts, for promtool. */
export function substituteVariables(expr: string): string {
  return expr
    .replace(/\$job\b/g, 'ndjson-ingest')
    .replace(/\$instance\b/g, '127.0.0.1:8888')
    .replace(/\$worker\b/g, '.+');
}

const KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'and',
  'or',
  'unless',
  'offset',
  'inf',
  'nan',
]);

/**
 * The metric names an expression selects. Strings, label matchers `{…}`, ranges `[…]` and
 * grouping lists `by (…)` are removed first; what remains that is an identifier not followed by
 * `(` (a function or aggregation) and not a keyword is a metric name.
 */
export function metricNames(expr: string): string[] {
  const stripped = promqlOf(expr)
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/(?<![\w.$:])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()/g)) {
    if (!KEYWORDS.has(m[1].toLowerCase())) names.add(m[1]);
  }
  return [...names].sort();
}

const AGGREGATION =
  /\b(sum|min|max|avg|count|group|stddev|stdvar|topk|bottomk|quantile)\s*(?:(by|without)\s*\(([^)]*)\))?\s*\(/g;

/** True when every aggregation in `expr` drops the `worker` label (and there is at least one). */
export function aggregatesWorkerAway(expr: string): boolean {
  const aggs = [...expr.matchAll(AGGREGATION)];
  if (aggs.length === 0) return false;
  return aggs.every(([, , mode, labels]) => {
    const list = (labels ?? '').split(',').map((l) => l.trim());
    if (mode === 'without') return list.includes('worker');
    return !list.includes('worker');
  });
}

/** True when the result still has one series per worker: no aggregation, or `by (…, worker)`. */
export function keepsWorker(expr: string): boolean {
  return [...expr.matchAll(AGGREGATION)].every(([, , mode, labels]) => {
    const list = (labels ?? '').split(',').map((l) => l.trim());
    return mode === 'by' ? list.includes('worker') : mode === 'without' && !list.includes('worker');
  });
}
