/**
 * The Prometheus files, checked by Prometheus's own tool:
 *   promtool check config ops/prometheus/prometheus.yml   (also loads alerts.yml)
 *   promtool check rules  ops/prometheus/alerts.yml
 *   promtool test rules   ops/prometheus/alerts.test.yml  (each alert fires when it should)
 * and the dashboard's PromQL parsed by promtool as recording rules.
 *
 * promtool comes with Debian's `prometheus` package (`apt-get install -y prometheus`), which CI
 * installs. Without it these tests fail, unless SKIP_PROMTOOL=1.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import {
  ROOT,
  allQueries,
  loadDashboard,
  promqlOf,
  substituteVariables,
} from './dashboard-queries.js';

const MISSING =
  "promtool is not on PATH: install Debian's `prometheus` package (`apt-get install -y prometheus`, " +
  'as CI does), or set SKIP_PROMTOOL=1 to skip the Prometheus checks';

function findOnPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return null;
}

const promtool = findOnPath('promtool');

function run(...args: string[]): { status: number | null; output: string } {
  if (!promtool) throw new Error(MISSING);
  const r = spawnSync(promtool, args, { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
  if (r.error) throw r.error;
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

(process.env.SKIP_PROMTOOL === '1' ? describe.skip : describe)('promtool', () => {
  test('promtool is installed', () => {
    if (!promtool) throw new Error(MISSING);
    expect(run('--version').status).toBe(0);
  });

  test('check config ops/prometheus/prometheus.yml, which loads alerts.yml', () => {
    const r = run('check', 'config', 'ops/prometheus/prometheus.yml');
    expect(r).toEqual({
      status: 0,
      output: expect.stringContaining('SUCCESS: 1 rule files found'),
    });
  });

  test('check rules ops/prometheus/alerts.yml', () => {
    const r = run('check', 'rules', 'ops/prometheus/alerts.yml');
    expect(r).toEqual({ status: 0, output: expect.stringContaining('SUCCESS: 5 rules found') });
  });

  test('test rules ops/prometheus/alerts.test.yml: each alert fires, and only when it should', () => {
    const r = run('test', 'rules', 'ops/prometheus/alerts.test.yml');
    expect(r).toEqual({ status: 0, output: expect.stringContaining('SUCCESS') });
  });

  describe('with files of our own', () => {
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'promtool-'));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    test('a broken rule is refused (the checks above can fail)', () => {
      if (!promtool) throw new Error(MISSING);
      const path = join(dir, 'broken.yml');
      writeFileSync(
        path,
        'groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: sum by (le (rate(x[5m]))\n',
      );
      expect(run('check', 'rules', path).status).not.toBe(0);
    });

    test('every dashboard query is valid PromQL', () => {
      if (!promtool) throw new Error(MISSING);
      const queries = allQueries(loadDashboard());
      const rules = queries
        .map(
          ({ expr }, i) =>
            `      - record: dashboard:query_${i}\n        expr: ${JSON.stringify(substituteVariables(promqlOf(expr)))}\n`,
        )
        .join('');
      const path = join(dir, 'dashboard-queries.yml');
      writeFileSync(path, `groups:\n  - name: dashboard\n    rules:\n${rules}`);
      const r = run('check', 'rules', path);
      expect(r).toEqual({
        status: 0,
        output: expect.stringContaining(`SUCCESS: ${queries.length} rules found`),
      });
    });
  });
});
