/**
 * Static and stubbed checks of the k6 scripts (k6 itself is not installed where the tests run).
 *
 * Each k6/*.js is compiled as an ES module by node:vm (a syntax error fails here as it would in
 * `k6 run`), its imports are checked against what k6 can resolve without the network, and it is
 * then evaluated in a fresh context with k6's modules (`k6`, `k6/http`, …) replaced by small stubs
 * and k6's init-context globals (`open`, `__ENV`, `__VU`). That runs the init code for real —
 * scenarios.json parsed, bodies built, `options` computed — and lets one iteration be played
 * against a fake server, to see which body is sent and which checks pass.
 *
 * Needs `node --experimental-vm-modules`, which the test command passes.
 */
import vm from 'node:vm';
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { referenceBody, sampleAvailable, taxiBody } from '../support/taxi.js';
import { badInputs } from '../../k6/lib/bad-inputs.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const K6_DIR = join(ROOT, 'k6');
const SCRIPTS = readdirSync(K6_DIR)
  .filter((f) => f.endsWith('.js'))
  .sort();

/** ingest.js without ../shared (a clone on its own); soak.js always generates its bodies. */
const GENERATED = { BODY: 'generated' };

/** Built-in k6 modules the scripts may import (no remote jslib, no npm). */
const K6_MODULE = /^k6(\/[a-z0-9-]+)*$/;

interface Shape {
  name: string;
  concurrency: number;
  requests: number;
  body: string;
  maxDurationSeconds: number;
}
interface MixEntry {
  name: string;
  weight: number;
  records: number;
  invalid: number;
  gzip?: boolean;
}
interface ScenariosFile {
  path: string;
  bodies: Record<
    string,
    {
      copies: number;
      generatedRecords: number;
      generatedSeed: number;
      expect: { valid: number; invalid: number };
    }
  >;
  thresholds: Record<string, string>;
  scenarios: Shape[];
  soak: {
    rate: number;
    timeUnit: string;
    duration: string;
    preAllocatedVUs: number;
    maxVUs: number;
    thresholds: Record<string, string>;
    mix: MixEntry[];
  };
}

const scenariosFile = JSON.parse(
  readFileSync(join(K6_DIR, 'scenarios.json'), 'utf8'),
) as ScenariosFile;

// ---------------------------------------------------------------------------------------------
// A stub k6 runtime

interface SentRequest {
  method: string;
  url: string;
  body: string;
  params: { headers?: Record<string, string>; compression?: string; tags?: object };
}
interface FakeAnswer {
  status: number;
  body: string;
  headers?: Record<string, string>;
}
type FakeServer = (req: SentRequest) => FakeAnswer;
interface CheckResult {
  name: string;
  pass: boolean;
}

interface K6Run {
  options: Record<string, unknown>;
  iterate: () => void;
  requests: SentRequest[];
  checks: CheckResult[];
  opened: string[];
}

/** Module specifiers a module imports, found by the module parser, not a regular expression. */
function importsOf(file: string): string[] {
  const mod = new vm.SourceTextModule(readFileSync(file, 'utf8'), {
    identifier: pathToFileURL(file).href,
  });
  return [...mod.dependencySpecifiers];
}

function isRelative(specifier: string): boolean {
  return specifier.startsWith('./') || specifier.startsWith('../');
}

/**
 * Imports k6 could not resolve offline: anything but `k6`, `k6/*`, and relative `.js` files that
 * exist inside the script's k6 folder, followed transitively.
 */
function importProblems(file: string, k6Dir = dirname(file)): string[] {
  const seen = new Set<string>();
  const bad: string[] = [];
  const visit = (path: string): void => {
    if (seen.has(path)) return;
    seen.add(path);
    for (const specifier of importsOf(path)) {
      if (K6_MODULE.test(specifier)) continue;
      if (!isRelative(specifier) || !specifier.endsWith('.js')) {
        bad.push(`${relative(k6Dir, path)}: ${specifier}`);
        continue;
      }
      const target = resolve(dirname(path), specifier);
      if (!target.startsWith(k6Dir + sep) || !existsSync(target)) {
        bad.push(`${relative(k6Dir, path)}: ${specifier} (missing or outside k6/)`);
        continue;
      }
      visit(target);
    }
  };
  visit(file);
  return bad;
}

/**
 * Evaluates a k6 script's init context with stubbed k6 modules. `server` answers every
 * http.post; `iterate()` runs the default function once, as one k6 iteration.
 */
async function loadK6Script(
  script: string,
  env: Record<string, string>,
  server: FakeServer,
): Promise<K6Run> {
  const file = resolve(K6_DIR, script);
  const requests: SentRequest[] = [];
  const checks: CheckResult[] = [];
  const opened: string[] = [];
  const execution = { scenario: { iterationInTest: 0, name: 'stub' }, vu: { idInTest: 1 } };
  let inInit = true;

  const context = vm.createContext({
    __ENV: { ...env },
    __VU: 0,
    __ITER: 0,
    console,
    // k6 resolves open() relative to the script's folder, and only in the init context.
    open(path: string, mode?: string): string | ArrayBuffer {
      if (!inInit) throw new Error('open() can only be called from the init context');
      const abs = resolve(dirname(file), path);
      opened.push(abs);
      const bytes = readFileSync(abs);
      if (mode === 'b')
        return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length);
      return bytes.toString('utf8');
    },
  });

  function response(answer: FakeAnswer) {
    return {
      status: answer.status,
      body: answer.body,
      headers: answer.headers ?? {},
      error: '',
      error_code: 0,
      json() {
        return JSON.parse(answer.body);
      },
    };
  }
  function request(method: string, url: string, body: unknown, params: SentRequest['params']) {
    if (inInit) throw new Error('k6 makes no HTTP request in the init context');
    // k6 takes a string, an ArrayBuffer (binary) or null (no body).
    let text: string;
    if (typeof body === 'string') text = body;
    else if (body === null || body === undefined) text = '';
    else if (
      body instanceof ArrayBuffer ||
      Object.prototype.toString.call(body) === '[object ArrayBuffer]'
    )
      text = Buffer.from(body as ArrayBuffer).toString('latin1');
    else throw new Error(`body is ${typeof body}, expected a string, an ArrayBuffer or null`);
    const req: SentRequest = { method, url, body: text, params: params ?? {} };
    requests.push(req);
    return response(server(req));
  }
  const http = {
    post: (url: string, body: unknown, params: SentRequest['params']) =>
      request('POST', url, body, params),
    request: (method: string, url: string, body: unknown, params: SentRequest['params']) =>
      request(method, url, body, params),
    expectedStatuses: (...codes: number[]) => ({ expected: codes }),
    setResponseCallback: () => undefined,
  };
  // k6's check(): runs every predicate (an exception propagates and ends the iteration).
  function check(value: unknown, sets: Record<string, (v: unknown) => unknown>): boolean {
    let all = true;
    for (const [name, predicate] of Object.entries(sets)) {
      const pass = Boolean(predicate(value));
      checks.push({ name, pass });
      all &&= pass;
    }
    return all;
  }
  class Metric {
    readonly samples: [number, object | undefined][] = [];
    constructor(readonly name: string) {}
    add(value: number, tags?: object): void {
      this.samples.push([value, tags]);
    }
  }
  const stubs: Record<string, Record<string, unknown>> = {
    k6: {
      check,
      sleep: () => undefined,
      group: (_name: string, fn: () => unknown) => fn(),
      fail: (msg: string) => {
        throw new Error(msg);
      },
    },
    'k6/http': { ...http, default: http },
    'k6/execution': { default: execution },
    'k6/metrics': { Counter: Metric, Gauge: Metric, Rate: Metric, Trend: Metric },
  };

  const modules = new Map<string, vm.Module>();
  async function link(specifier: string, referencing: vm.Module): Promise<vm.Module> {
    if (K6_MODULE.test(specifier)) {
      const exports = stubs[specifier];
      if (!exports) throw new Error(`no stub for ${specifier}: add one to this test`);
      const key = `k6:${specifier}`;
      let mod = modules.get(key);
      if (!mod) {
        mod = new vm.SyntheticModule(
          Object.keys(exports),
          function (this: vm.SyntheticModule) {
            for (const [name, value] of Object.entries(exports)) this.setExport(name, value);
          },
          { context, identifier: key },
        );
        modules.set(key, mod);
      }
      return mod;
    }
    if (!isRelative(specifier)) throw new Error(`k6 cannot resolve ${specifier}`);
    const path = resolve(dirname(fileURLToPath(referencing.identifier)), specifier);
    let mod = modules.get(path);
    if (!mod) {
      mod = new vm.SourceTextModule(readFileSync(path, 'utf8'), {
        context,
        identifier: pathToFileURL(path).href,
      });
      modules.set(path, mod);
    }
    return mod;
  }

  const main = new vm.SourceTextModule(readFileSync(file, 'utf8'), {
    context,
    identifier: pathToFileURL(file).href,
  });
  await main.link(link);
  await main.evaluate();
  inInit = false;
  const ns = main.namespace as { default?: unknown; options?: unknown };
  if (typeof ns.default !== 'function') throw new Error(`${script} has no default function`);
  if (typeof ns.options !== 'object' || ns.options === null) {
    throw new Error(`${script} exports no options object`);
  }
  const iteration = ns.default as () => void;
  return {
    options: ns.options as Record<string, unknown>,
    iterate() {
      iteration();
      execution.scenario.iterationInTest++;
    },
    requests,
    checks,
    opened,
  };
}

// ---------------------------------------------------------------------------------------------
// A fake service: SPEC §3/§4 answers, with JSON.parse standing in for the strict validator.

interface Model {
  valid: number;
  invalid: number;
  errors: { line: number; error: string; message: string }[];
}

function modelIngest(body: string): Model {
  const text = body.startsWith('\ufeff') ? body.slice(1) : body;
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const model: Model = { valid: 0, invalid: 0, errors: [] };
  lines.forEach((raw, i) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (/^[ \t\r]*$/.test(line)) return;
    let code: string | null = null;
    try {
      const value: unknown = JSON.parse(line);
      if (value === null || typeof value !== 'object' || Array.isArray(value)) code = 'not_object';
    } catch {
      code = 'invalid_json';
    }
    if (code === null) {
      model.valid++;
      return;
    }
    model.invalid++;
    if (model.errors.length < 10) model.errors.push({ line: i + 1, error: code, message: '' });
  });
  return model;
}

function okAnswer(bytes: number, m: Model): FakeAnswer {
  return {
    status: 200,
    body: JSON.stringify({
      result: {
        status: 'ok',
        stats: {
          bytes,
          records: { valid: m.valid, invalid: m.invalid, total: m.valid + m.invalid },
        },
        request_id: 'test',
        errors: m.errors,
      },
    }),
  };
}

/** Answers as the contract says; `tamper` lets a test make it lie. */
function fakeService(tamper: (m: Model) => Model = (m) => m): FakeServer {
  return (req) => {
    const bytes =
      req.params.compression === 'gzip'
        ? gzipSync(req.body).length
        : Buffer.byteLength(req.body, 'utf8');
    return okAnswer(bytes, tamper(modelIngest(req.body)));
  };
}

/**
 * What a correct service answers each script's requests: the model service for the throughput
 * scripts; for bad-input.js, each case's expected error in the order the script sends them (the
 * real answers are checked against the real service in test/k6/bad-input.e2e.test.ts).
 */
function correctService(script: string): {
  server: FakeServer;
  perIteration: number;
  checksPerRequest: number;
} {
  if (script === 'bad-input.js') {
    const cases = badInputs(GENERATED);
    let i = 0;
    return {
      server: () => {
        const c = cases[i++ % cases.length];
        const result =
          c.code === null
            ? { status: 'ok', stats: {}, request_id: 't' }
            : { status: 'error', error: { code: c.code, message: 'm' }, request_id: 't' };
        return { status: c.status, body: JSON.stringify({ result }) };
      },
      perIteration: cases.length,
      checksPerRequest: 1,
    };
  }
  return {
    server: fakeService(),
    perIteration: 1,
    checksPerRequest: script === 'spike.js' ? 1 : 2,
  };
}

const failing: FakeServer = () => ({
  status: 500,
  body: JSON.stringify({
    result: { status: 'error', error: { code: 'internal', message: 'x' }, request_id: 't' },
  }),
});

function durationSeconds(d: unknown): number {
  const m = /^(\d+)(s|m|h)$/.exec(String(d));
  if (!m) throw new Error(`unexpected duration ${String(d)}`);
  return Number(m[1]) * { s: 1, m: 60, h: 3600 }[m[2] as 's' | 'm' | 'h'];
}

// ---------------------------------------------------------------------------------------------

describe('the stub runtime itself', () => {
  test('vm modules are available (node --experimental-vm-modules)', () => {
    expect(typeof vm.SourceTextModule).toBe('function');
  });

  describe('broken copies of the real scripts are caught', () => {
    let dir: string;
    beforeAll(() => {
      dir = join(mkdtempSync(join(tmpdir(), 'k6-broken-')), 'k6');
      cpSync(K6_DIR, dir, { recursive: true });
    });
    afterAll(() => rmSync(dirname(dir), { recursive: true, force: true }));

    /** Writes `script` with one replacement applied (which must match) and returns its path. */
    function mutant(script: string, from: string | RegExp, to: string): string {
      const source = readFileSync(join(K6_DIR, script), 'utf8');
      const changed = source.replace(from, to);
      if (changed === source) throw new Error(`mutation ${String(from)} did not apply`);
      const path = join(dir, `mutant-${script}`);
      writeFileSync(path, changed);
      return path;
    }

    test.each(SCRIPTS)('%s with a syntax error does not parse', (script) => {
      const path = mutant(script, /\}\s*$/, '');
      expect(() => new vm.SourceTextModule(readFileSync(path, 'utf8'))).toThrow(
        expect.objectContaining({ name: 'SyntaxError' }),
      );
    });

    test.each(SCRIPTS)('%s importing a Node or remote module is refused', (script) => {
      const path = mutant(script, "from 'k6/http'", "from 'node:http'");
      expect(importProblems(path)).toEqual([`mutant-${script}: node:http`]);
      const remote = mutant(
        script,
        "from 'k6'",
        "from 'https://jslib.k6.io/k6-utils/1.4.0/index.js'",
      );
      expect(importProblems(remote)).toHaveLength(1);
      const relativeImport = importsOf(join(K6_DIR, script)).find(isRelative)!;
      const missing = mutant(script, relativeImport, './lib/missing.js');
      expect(importProblems(missing)).toHaveLength(1);
    });

    test.each(SCRIPTS)('%s without its default function is refused', async (script) => {
      const path = mutant(script, 'export default function', 'export function iteration');
      await expect(loadK6Script(path, GENERATED, fakeService())).rejects.toThrow(
        /no default function/,
      );
    });

    test.each(SCRIPTS)('%s without options is refused', async (script) => {
      const path = mutant(script, 'export const options', 'const options');
      await expect(loadK6Script(path, GENERATED, fakeService())).rejects.toThrow(/no options/);
    });
  });

  test('the model service counts like SPEC §4', () => {
    const m = modelIngest('{"a":1}\r\n\n  \t\n[1]\n{"a":01}\n\f\n{"b":2}');
    expect(m).toEqual({
      valid: 2,
      invalid: 3,
      errors: [
        { line: 4, error: 'not_object', message: '' },
        { line: 5, error: 'invalid_json', message: '' },
        { line: 6, error: 'invalid_json', message: '' },
      ],
    });
  });
});

describe.each(SCRIPTS)('k6/%s', (script) => {
  const file = join(K6_DIR, script);
  const source = readFileSync(file, 'utf8');

  test('parses as an ES module', () => {
    expect(() => new vm.SourceTextModule(source, { identifier: script })).not.toThrow();
  });

  test('imports only k6 modules and relative files inside k6/ (transitively)', () => {
    expect(importProblems(file)).toEqual([]);
    expect(importsOf(file).some((s) => K6_MODULE.test(s))).toBe(true);
  });

  test('exports a default function and an options object with scenarios and thresholds', async () => {
    const run = await loadK6Script(script, GENERATED, fakeService());
    expect(Object.keys(run.options.scenarios as object).length).toBeGreaterThan(0);
    expect(Object.keys(run.options.thresholds as object).length).toBeGreaterThan(0);
    expect(run.options.noConnectionReuse).not.toBe(true);
    expect(run.opened).toContain(join(K6_DIR, 'scenarios.json'));
  });

  test('an iteration against a correct service passes every check', async () => {
    const { server, perIteration, checksPerRequest } = correctService(script);
    const run = await loadK6Script(script, GENERATED, server);
    for (let i = 0; i < 24; i++) run.iterate();
    expect(run.requests).toHaveLength(24 * perIteration);
    expect(run.checks.length).toBeGreaterThanOrEqual(24 * perIteration * checksPerRequest);
    expect(run.checks.filter((c) => !c.pass)).toEqual([]);
  });

  test('an iteration against a failing service fails a check without throwing', async () => {
    const run = await loadK6Script(script, GENERATED, failing);
    run.iterate();
    expect(run.checks.length).toBeGreaterThan(0);
    if (run.checks.some((c) => c.name === 'status is 200')) {
      expect(run.checks.find((c) => c.name === 'status is 200')).toEqual({
        name: 'status is 200',
        pass: false,
      });
    } else {
      expect(run.checks.every((c) => !c.pass)).toBe(true);
    }
    const notJson = await loadK6Script(script, GENERATED, () => ({
      status: 502,
      body: '<html>bad gateway</html>',
    }));
    notJson.iterate();
    expect(notJson.checks.every((c) => !c.pass)).toBe(true);
  });
});

describe('k6/scenarios.json', () => {
  test('concurrency 1, 2, 4, 8 with 2,048 requests each, on a defined body', () => {
    const shapes = scenariosFile.scenarios;
    expect(shapes.map((s) => s.concurrency)).toEqual([1, 2, 4, 8]);
    for (const s of shapes) {
      expect(s.requests).toBe(2048);
      expect(scenariosFile.bodies[s.body]).toBeDefined();
      expect(s.maxDurationSeconds).toBeGreaterThan(0);
    }
    expect(new Set(shapes.map((s) => s.name)).size).toBe(shapes.length);
  });

  test('the reference body is 16 × the sample, 1,600 valid records (SPEC §1)', () => {
    const ref = scenariosFile.bodies.reference;
    expect(ref.copies).toBe(16);
    expect(ref.generatedRecords).toBe(1600);
    expect(ref.expect).toEqual({ valid: 1600, invalid: 0 });
  });

  test('thresholds: no failed request, p99 under 15 ms', () => {
    expect(scenariosFile.thresholds.http_req_failed).toBe('rate==0');
    expect(scenariosFile.thresholds.http_req_duration).toBe('p(99)<15');
  });

  test('the soak mix has several sizes, invalid lines and a compressed body', () => {
    const mix = scenariosFile.soak.mix;
    expect(new Set(mix.map((m) => m.records + m.invalid)).size).toBeGreaterThanOrEqual(3);
    expect(mix.some((m) => m.invalid > 0)).toBe(true);
    expect(mix.some((m) => m.invalid === 0)).toBe(true);
    expect(mix.some((m) => m.gzip === true)).toBe(true);
    for (const m of mix) expect(m.weight).toBeGreaterThan(0);
  });
});

describe('k6/ingest.js', () => {
  test('one shared-iterations scenario per shape, run one after another', async () => {
    const { options } = await loadK6Script('ingest.js', GENERATED, fakeService());
    const scenarios = options.scenarios as Record<string, Record<string, unknown>>;
    expect(Object.keys(scenarios)).toEqual(['c1', 'c2', 'c4', 'c8']);
    let free = 0;
    for (const shape of scenariosFile.scenarios) {
      const s = scenarios[shape.name];
      expect(s).toMatchObject({
        executor: 'shared-iterations',
        vus: shape.concurrency,
        iterations: 2048,
      });
      const start = durationSeconds(s.startTime);
      expect(start).toBeGreaterThanOrEqual(free);
      free = start + durationSeconds(s.maxDuration) + durationSeconds(s.gracefulStop);
    }
  });

  test('thresholds per scenario: http_req_failed rate==0, http_req_duration p(99)<15', async () => {
    const { options } = await loadK6Script('ingest.js', GENERATED, fakeService());
    const thresholds = options.thresholds as Record<string, string[]>;
    for (const name of ['c1', 'c2', 'c4', 'c8']) {
      expect(thresholds[`http_req_failed{scenario:${name}}`]).toEqual(['rate==0']);
      expect(thresholds[`http_req_duration{scenario:${name}}`]).toEqual(['p(99)<15']);
      expect(thresholds[`checks{scenario:${name}}`]).toEqual(['rate==1']);
    }
  });

  test('CONCURRENCY selects shapes, which then start at once; an unknown one is refused', async () => {
    const one = await loadK6Script('ingest.js', { ...GENERATED, CONCURRENCY: '4' }, fakeService());
    expect(options(one)).toEqual({ c4: expect.objectContaining({ vus: 4, startTime: '0s' }) });
    const two = await loadK6Script(
      'ingest.js',
      { ...GENERATED, CONCURRENCY: '8, 1' },
      fakeService(),
    );
    expect(Object.keys(options(two))).toEqual(['c1', 'c8']);
    await expect(
      loadK6Script('ingest.js', { ...GENERATED, CONCURRENCY: '3' }, fakeService()),
    ).rejects.toThrow(/CONCURRENCY=3/);
  });

  (sampleAvailable() ? test : test.skip)(
    'POSTs 16 × the sample (584,480 bytes) to BASE_URL/ingest and expects 1,600 valid',
    async () => {
      const run = await loadK6Script('ingest.js', {}, fakeService());
      run.iterate();
      expect(run.requests).toHaveLength(1);
      const [req] = run.requests;
      expect(req.method).toBe('POST');
      expect(req.url).toBe('http://127.0.0.1:8888/ingest');
      expect(req.body.length).toBe(584480);
      expect(req.body).toBe(referenceBody().body.toString('utf8'));
      expect(run.checks).toEqual([
        { name: 'status is 200', pass: true },
        { name: 'result.stats.records.valid is 1600', pass: true },
      ]);
    },
  );

  test('BODY=generated sends the project generator’s bytes (test/support/taxi.ts)', async () => {
    const run = await loadK6Script(
      'ingest.js',
      { BODY: 'generated', BASE_URL: 'http://10.1.2.3:9999/' },
      fakeService(),
    );
    run.iterate();
    expect(run.requests[0].url).toBe('http://10.1.2.3:9999/ingest');
    expect(run.requests[0].body).toBe(taxiBody(1600, 1).toString('utf8'));
    expect(run.opened.every((p) => !p.endsWith('.ndjson'))).toBe(true);
  });

  test('a 200 with the wrong record count fails the check', async () => {
    const run = await loadK6Script(
      'ingest.js',
      GENERATED,
      fakeService((m) => ({ ...m, valid: m.valid - 1 })),
    );
    run.iterate();
    expect(run.checks).toEqual([
      { name: 'status is 200', pass: true },
      { name: 'result.stats.records.valid is 1600', pass: false },
    ]);
  });

  test('TOKEN becomes a bearer token; the connection is kept alive', async () => {
    const run = await loadK6Script(
      'ingest.js',
      { BODY: 'generated', TOKEN: 's3cret' },
      fakeService(),
    );
    run.iterate();
    expect(run.requests[0].params.headers).toMatchObject({ Authorization: 'Bearer s3cret' });
    expect(run.options.noConnectionReuse).toBe(false);
    expect(run.options.noVUConnectionReuse).toBe(false);
  });
});

function options(run: K6Run): Record<string, unknown> {
  return run.options.scenarios as Record<string, unknown>;
}

describe('k6/soak.js', () => {
  const cycle = scenariosFile.soak.mix.reduce((n, m) => n + m.weight, 0);

  test('a constant-arrival-rate scenario with the soak thresholds', async () => {
    const run = await loadK6Script('soak.js', { RATE: '7', DURATION: '2h' }, fakeService());
    expect(options(run)).toEqual({
      soak: expect.objectContaining({
        executor: 'constant-arrival-rate',
        rate: 7,
        duration: '2h',
        timeUnit: '1s',
      }),
    });
    expect(run.options.thresholds).toMatchObject({
      http_req_failed: ['rate==0'],
      checks: ['rate==1'],
    });
  });

  test('sends every body of the mix, by weight, and each answer of a correct service passes', async () => {
    const run = await loadK6Script('soak.js', {}, fakeService());
    for (let i = 0; i < 2 * cycle; i++) run.iterate();
    expect(run.checks.filter((c) => !c.pass)).toEqual([]);
    const sizes = new Map<number, number>();
    for (const r of run.requests) sizes.set(r.body.length, (sizes.get(r.body.length) ?? 0) + 1);
    expect([...sizes.values()].sort((a, b) => a - b)).toEqual(
      scenariosFile.soak.mix.map((m) => 2 * m.weight).sort((a, b) => a - b),
    );
    const invalidSent = run.requests.map((r) => modelIngest(r.body).invalid);
    expect(invalidSent.filter((n) => n > 0).length).toBeGreaterThan(0);
    expect(run.requests.some((r) => r.params.compression === 'gzip')).toBe(true);
    // Each mix entry's counts are what the model service finds in the body it produced.
    for (const m of scenariosFile.soak.mix) {
      const req = run.requests.find((r) => {
        const got = modelIngest(r.body);
        return got.valid === m.records && got.invalid === m.invalid;
      });
      expect(req).toBeDefined();
    }
  });

  test('a service that miscounts invalid records fails a check', async () => {
    const run = await loadK6Script(
      'soak.js',
      {},
      fakeService((m) => (m.invalid > 0 ? { ...m, invalid: m.invalid - 1 } : m)),
    );
    for (let i = 0; i < cycle; i++) run.iterate();
    const failed = new Set(run.checks.filter((c) => !c.pass).map((c) => c.name));
    expect(failed).toContain('records.invalid as sent');
  });

  test('a service that reports the wrong error lines fails a check', async () => {
    const run = await loadK6Script(
      'soak.js',
      {},
      fakeService((m) => ({ ...m, errors: m.errors.map((e) => ({ ...e, line: e.line + 1 })) })),
    );
    for (let i = 0; i < cycle; i++) run.iterate();
    const failed = new Set(run.checks.filter((c) => !c.pass).map((c) => c.name));
    expect(failed).toEqual(new Set(['errors name the first invalid lines']));
  });
});
