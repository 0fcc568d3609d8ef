/**
 * npm run bench:instructions [-- --against REV ...] [-- --write]
 *
 * Instructions per request of one worker, counted by valgrind's callgrind: a figure this shared
 * host cannot move. Wall-clock CPU per request moves by 10–25 % between identical workers here
 * (docs/performance-notes.md), so a lever worth a few per cent can only be read this way.
 *
 * Each variant is the service as `npm run start:single` runs it (`node dist/main.js`, glibc's
 * trim threshold, one log line per request), started under `valgrind --tool=callgrind` with
 * instrumentation off. It serves WARMUP requests of the reference body (the JIT settles; ~30 ms
 * each under valgrind), then instrumentation goes on, and each of ROUNDS rounds counts REQUESTS
 * requests sent one at a time on one keep-alive connection (vgdb's `zero` and `dump`). The rounds
 * alternate between the variants, which run side by side. Every answer is checked (200, 1,600
 * valid records).
 *
 * Variants: `current` is dist/ (`npm run build` first: the script does it); each `--against REV`
 * adds the service built from that git revision (a temporary worktree, bench/.before-*, removed
 * after). The report gives, per variant, the medians over the rounds of the instructions per
 * request in the main thread (the event loop: what a request waits for) and in all threads
 * (V8's helpers: GC, compilation), and each variant's ratio to `current`.
 *
 * Read it with its limits: an instruction count is not time (a cache miss or a mispredicted
 * branch costs no instruction, and valgrind counts each byte of a `rep movsb` copy as one),
 * and system calls count only their user-space side. It ranks levers that change the work done;
 * wall-clock benches judge them.
 *
 * Needs valgrind (`apt-get install valgrind`). With --write, the table replaces the instructions
 * section of BENCHMARKS.md.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { referenceBody } from '../test/support/taxi.js';
import { freePort, ROOT, send } from '../test/support/server.js';
import { median, provenance } from './report.js';
import { SAME_MALLOC } from './servers.js';
import { publishSection } from './write-section.js';

const WARMUP = Number(process.env.WARMUP ?? 4000);
const ROUNDS = Number(process.env.ROUNDS ?? 6);
const REQUESTS = Number(process.env.REQUESTS ?? 100);

const { body, source } = referenceBody();

function has(command: string): boolean {
  try {
    execFileSync(command, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

if (!has('valgrind')) {
  console.error('bench:instructions needs valgrind: apt-get install valgrind');
  process.exit(1);
}

interface Variant {
  name: string;
  main: string;
  cleanup?: () => void;
}

/** The service built from a git revision, in a temporary worktree that shares node_modules. */
function buildAt(rev: string): Variant {
  const dir = mkdtempSync(join(ROOT, 'bench', '.before-'));
  rmSync(dir, { recursive: true });
  execFileSync('git', ['worktree', 'add', '--detach', dir, rev], { cwd: ROOT, stdio: 'ignore' });
  const cleanup = () => {
    execFileSync('git', ['worktree', 'remove', '--force', dir], { cwd: ROOT, stdio: 'ignore' });
  };
  try {
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
    execFileSync(
      process.execPath,
      [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'],
      { cwd: dir, stdio: 'inherit' },
    );
  } catch (err) {
    cleanup();
    throw err;
  }
  return { name: rev, main: join(dir, 'dist', 'main.js'), cleanup };
}

/** One worker under callgrind, its counters driven through vgdb. */
class Counted {
  readonly out = mkdtempSync(join(tmpdir(), 'ndjson-ingest-callgrind-'));
  private proc: ChildProcess | undefined;
  private env!: NodeJS.ProcessEnv;
  private dumps = 0;
  private agent = new Agent({ keepAlive: true, maxSockets: 1 });
  port = 0;

  constructor(readonly variant: Variant) {}

  async start(): Promise<void> {
    this.port = await freePort();
    this.env = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      // vgdb finds the process by a name made of these: the same for both sides.
      USER: 'bench',
      LOGNAME: 'bench',
      HOST: '127.0.0.1',
      PORT: String(this.port),
      CSV_DIR: join(this.out, 'csv'),
      LOG_LEVEL: 'info',
      // Under valgrind every request takes ~50× its time: the load checks would refuse.
      SHED_EVENT_LOOP_DELAY_MS: '0',
      SHED_EVENT_LOOP_TURN_MS: '0',
      ...SAME_MALLOC,
    };
    this.proc = spawn(
      'valgrind',
      [
        '--tool=callgrind',
        '--instr-atstart=no',
        '--separate-threads=yes',
        `--callgrind-out-file=${join(this.out, 'cg.out')}`,
        process.execPath,
        this.variant.main,
      ],
      { cwd: ROOT, env: this.env, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let err = '';
    this.proc.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    const until = Date.now() + 180_000;
    for (;;) {
      if (this.proc.exitCode !== null) throw new Error(`${this.variant.name} exited:\n${err}`);
      try {
        const live = await send(`http://127.0.0.1:${this.port}/health/live`, null, {
          method: 'GET',
          agent: this.agent,
        });
        if (live.status === 200) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > until) throw new Error(`${this.variant.name} did not start:\n${err}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  /** One reference request; every answer must be a 200 with all 1,600 records valid. */
  async post(): Promise<void> {
    const a = await send(`http://127.0.0.1:${this.port}/ingest`, body, {
      agent: this.agent,
      headers: { 'content-type': 'application/x-ndjson' },
    });
    if (a.status !== 200 || a.json?.result?.stats?.records?.valid !== 1600) {
      throw new Error(`${this.variant.name}: ${a.status} ${a.text.slice(0, 300)}`);
    }
  }

  private monitor(...command: string[]): void {
    execFileSync('vgdb', [`--pid=${this.proc!.pid}`, ...command], {
      env: this.env,
      stdio: 'ignore',
    });
  }

  instrument(): void {
    this.monitor('instrumentation', 'on');
  }

  zero(): void {
    this.monitor('zero');
  }

  /**
   * Dumps the counters since the last zero: instructions of the main thread and of all, and the
   * main thread's by part.
   */
  dump(): { main: number; all: number; parts: Map<Part, number> } {
    this.monitor('dump');
    this.dumps++;
    const part = `cg.out.${this.dumps}-`;
    let main = 0;
    let all = 0;
    let parts = new Map<Part, number>();
    for (const f of readdirSync(this.out).filter((n) => n.startsWith(part))) {
      const text = readFileSync(join(this.out, f), 'utf8');
      const total = Number(/^(?:summary|totals): (\d+)/m.exec(text)?.[1] ?? 0);
      all += total;
      if (f.endsWith('-01')) {
        main = total;
        parts = partsOf(text);
      }
      rmSync(join(this.out, f));
    }
    return { main, all, parts };
  }

  async stop(): Promise<void> {
    this.agent.destroy();
    // Not started (another variant failed first), or gone already: nothing to wait for.
    const proc = this.proc;
    if (proc !== undefined && proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    }
    rmSync(this.out, { recursive: true, force: true });
    this.variant.cleanup?.();
  }
}

const PARTS = [
  'WebAssembly: the kernel',
  'JavaScript (JIT code)',
  "V8's builtins (called by JavaScript: property access, calls, promises)",
  'V8 and Node.js in C++ (runtime, GC, bindings, libuv)',
  'UTF-8 check (simdutf)',
  'memcpy, memmove, memset',
  'malloc, free',
  'other libraries',
] as const;
type Part = (typeof PARTS)[number];

/**
 * The main thread's instructions by part, from a callgrind dump: each function's own cost
 * (`fn=` blocks; a call's inclusive cost, the line after `calls=`, is skipped). Code that
 * valgrind knows no file for is JIT code; V8 puts WebAssembly code in its own mappings far above
 * the 4 GiB pointer-compression cage that holds JavaScript code, so the address tells them apart.
 */
function partsOf(text: string): Map<Part, number> {
  const objects = new Map<string, string>();
  const functions = new Map<string, string>();
  const parts = new Map<Part, number>();
  let object = '';
  let fn = '';
  let skip = false;
  const named = (map: Map<string, string>, rest: string): string => {
    const m = /^\((\d+)\)(?: (.*))?$/.exec(rest);
    if (m === null) return rest;
    if (m[2] !== undefined) map.set(m[1], m[2]);
    return map.get(m[1]) ?? '';
  };
  for (const line of text.split('\n')) {
    if (line.startsWith('ob=')) object = named(objects, line.slice(3));
    else if (line.startsWith('cob=')) named(objects, line.slice(4));
    else if (line.startsWith('fn=')) fn = named(functions, line.slice(3));
    else if (line.startsWith('cfn=')) named(functions, line.slice(4));
    else if (line.startsWith('calls=')) skip = true;
    else if (/^[0-9+*-]/.test(line)) {
      if (skip) {
        skip = false;
        continue;
      }
      const cost = Number(line.slice(line.lastIndexOf(' ') + 1));
      const p = partOf(object, fn);
      parts.set(p, (parts.get(p) ?? 0) + cost);
    }
  }
  return parts;
}

function partOf(object: string, fn: string): Part {
  if (object === '???' || object === '') {
    return /^0x0*[1-9a-f][0-9a-f]{8,}$/.test(fn) ? PARTS[0] : PARTS[1];
  }
  if (/libc\.so/.test(object)) {
    if (/mem(cpy|move|set)/.test(fn)) return PARTS[5];
    if (/malloc|free|_int_|tcache|arena/.test(fn)) return PARTS[6];
    return PARTS[7];
  }
  if (object.endsWith('/node')) {
    if (fn.startsWith('Builtins_')) return PARTS[2];
    if (fn.includes('simdutf')) return PARTS[4];
    return PARTS[3];
  }
  return PARTS[7];
}

const variants: Variant[] = [{ name: 'current', main: join(ROOT, 'dist', 'main.js') }];
if (!existsSync(variants[0].main)) throw new Error('dist/main.js is missing: npm run build');
for (let i = 0; i < process.argv.length; i++) {
  if (process.argv[i] === '--against') variants.push(buildAt(process.argv[++i]));
}

const servers = variants.map((v) => new Counted(v));
const counts = new Map<string, { main: number[]; all: number[]; parts: Map<Part, number> }>();
try {
  for (const s of servers) {
    await s.start();
    counts.set(s.variant.name, { main: [], all: [], parts: new Map() });
  }
  console.log(`warm-up: ${WARMUP} requests per variant, instrumentation off`);
  for (const s of servers) {
    for (let i = 0; i < WARMUP; i++) await s.post();
    s.instrument();
    for (let i = 0; i < 20; i++) await s.post(); // code translated again with the counters in
  }
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? servers : [...servers].reverse();
    for (const s of order) {
      s.zero();
      for (let i = 0; i < REQUESTS; i++) await s.post();
      const { main, all, parts } = s.dump();
      const c = counts.get(s.variant.name)!;
      c.main.push(main / REQUESTS);
      c.all.push(all / REQUESTS);
      for (const [p, n] of parts) c.parts.set(p, (c.parts.get(p) ?? 0) + n);
      console.log(
        `round ${round + 1} ${s.variant.name}: ${(main / REQUESTS / 1e6).toFixed(3)} M main thread, ${(all / REQUESTS / 1e6).toFixed(3)} M all threads per request`,
      );
    }
  }
} finally {
  for (const s of servers) await s.stop();
}

const base = counts.get('current')!;
/** Each round's count over current's in the same round, median: pairs cancel the drift. */
const paired = (xs: number[], of: number[]) => median(xs.map((x, i) => x / of[i])).toFixed(3);
const m = (xs: number[]) => (median(xs) / 1e6).toFixed(3);
const spread = (xs: number[]) =>
  `${(Math.min(...xs) / 1e6).toFixed(3)}–${(Math.max(...xs) / 1e6).toFixed(3)}`;
const lines = [
  `One worker (\`node dist/main.js\`, one log line per request) under \`valgrind --tool=callgrind\`; ${WARMUP} warm-up requests of the reference body (${source}, ${body.length.toLocaleString('en-US')} bytes) with instrumentation off, then ${ROUNDS} rounds of ${REQUESTS} requests one at a time on one keep-alive connection, the variants alternating. Millions of instructions per request, medians over the rounds (range), and the median over the rounds of each round's ratio to current; main thread: the event loop; all threads: with V8's GC and compiler helpers.`,
  '',
  '| variant | main thread | range | all threads | range | main × current, paired | all × current, paired |',
  '| ------- | ----------: | ----- | ----------: | ----- | ---------------------: | --------------------: |',
  ...[...counts].map(
    ([name, c]) =>
      `| ${name} | ${m(c.main)} | ${spread(c.main)} | ${m(c.all)} | ${spread(c.all)} | ${paired(c.main, base.main)} | ${paired(c.all, base.all)} |`,
  ),
  '',
  ...[...counts].flatMap(([name, c]) => {
    const total = [...c.parts.values()].reduce((a, b) => a + b, 0);
    return [
      `The main thread of ${name} by part, over all rounds (the share of its instructions, and millions per request):`,
      '',
      '| part | share | M / request |',
      '| ---- | ----: | ----------: |',
      ...PARTS.map(
        (p) =>
          `| ${p} | ${((100 * (c.parts.get(p) ?? 0)) / total).toFixed(1)} % | ${((c.parts.get(p) ?? 0) / (ROUNDS * REQUESTS) / 1e6).toFixed(3)} |`,
      ),
      '',
    ];
  }),
  'An instruction count is not time: it ranks levers that change the work done, wall-clock benches judge them (valgrind counts a `rep movsb` copy byte by byte, and system calls by their user-space side only).',
  '',
  ...provenance(
    `npm run bench:instructions${
      variants.length > 1
        ? ` -- ${variants
            .slice(1)
            .map((v) => `--against ${v.name}`)
            .join(' ')}`
        : ''
    }`,
  ),
];
await publishSection('instructions', lines.join('\n'));
