/**
 * deploy/Dockerfile without a Docker engine (none runs here): its runtime stage is replayed in a
 * clean folder. The production install (`npm ci --omit=dev`, as its prod-deps stage runs it), the
 * files it copies, its ENV, and then its exact CMD. The test sends that process SIGTERM under
 * load, as `docker stop` would, and checks that the drain fails no request. Only the volumes
 * (CSV_DIR, PM2_HOME) and the port are pointed at temporary places, as `docker run -v -p` would.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DockerfileParser } from 'dockerfile-ast';
import { localDay } from '../../src/csv/csv-committer.js';
import { freePort, ROOT, send, tempDir } from '../support/server.js';

const dockerfile = DockerfileParser.parse(readFileSync(join(ROOT, 'deploy/Dockerfile'), 'utf8'));
const froms = dockerfile.getFROMs();
const finalStageLine = froms[froms.length - 1].getRange().start.line;
const finalStage = dockerfile
  .getInstructions()
  .filter((i) => i.getRange().start.line >= finalStageLine);

/** The final stage's ENV, with $PATH expanded against ours. */
function dockerEnv(app: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const i of finalStage.filter((x) => x.getKeyword() === 'ENV')) {
    for (const [, k, v] of (i.getArgumentsContent() ?? '')
      .replace(/\\\n/g, ' ')
      .matchAll(/(\w+)=(\S+)/g)) {
      env[k] = v.replace('$PATH', process.env.PATH ?? '').replaceAll('/app/', `${app}/`);
    }
  }
  return env;
}

/** The final stage's CMD, in exec form. */
function dockerCmd(): string[] {
  const cmd = finalStage.find((i) => i.getKeyword() === 'CMD')!;
  return JSON.parse(cmd.getArgumentsContent() ?? '[]') as string[];
}

describe('deploy/Dockerfile, its runtime stage replayed', () => {
  let app: string;
  let proc: ChildProcess;
  let port: number;
  let csvDir: string;

  beforeAll(async () => {
    app = join(tempDir('container-'), 'app');
    mkdirSync(app, { recursive: true });
    // The prod-deps stage: package files, then npm ci --omit=dev.
    for (const f of ['package.json', 'package-lock.json'])
      copyFileSync(join(ROOT, f), join(app, f));
    execFileSync('npm', ['ci', '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline'], {
      cwd: app,
      stdio: 'pipe',
    });
    // What the runtime stage copies: dist/ (the build stage's, here `npm test`'s build) and the
    // pm2 file.
    cpSync(join(ROOT, 'dist'), join(app, 'dist'), { recursive: true });
    copyFileSync(join(ROOT, 'ecosystem.config.js'), join(app, 'ecosystem.config.js'));
    port = await freePort();
    csvDir = join(app, 'volume-csv');
    const env = {
      ...dockerEnv(app),
      HOME: app,
      CSV_DIR: csvDir,
      PM2_HOME: join(app, 'pm2'),
      PORT: String(port),
      HOST: '127.0.0.1',
      INSTANCES: '2',
    };
    const [command, ...args] = dockerCmd();
    proc = spawn(command, args, { cwd: app, env, stdio: 'ignore' });
    const until = Date.now() + 60000;
    for (;;) {
      const live = await send(`http://127.0.0.1:${port}/health`, null, { method: 'GET' }).catch(
        () => null,
      );
      if (live?.status === 200) break;
      if (Date.now() > until) throw new Error('the container command did not start');
      await sleep(250);
    }
  }, 300000);

  afterAll(async () => {
    if (proc?.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });

  it('installs without dev dependencies, and its CMD drains on SIGTERM with no failed request', async () => {
    expect(dockerCmd()).toEqual(['pm2-runtime', 'ecosystem.config.js']);
    expect(readdirSync(join(app, 'node_modules'))).not.toContain('jest');
    expect(readdirSync(join(app, 'node_modules', '.bin'))).toContain('pm2-runtime');
    expect(Number(dockerEnv(app).SHUTDOWN_DELAY_MS)).toBeGreaterThan(1000);
    // The operators' command works in the production install (no TypeScript there).
    const checked = execFileSync(
      'npm',
      ['run', '-s', 'datasets', '--', 'check', join(ROOT, 'examples/datasets.yaml')],
      { cwd: app, encoding: 'utf8' },
    );
    expect(checked).toMatch(/ok, 2 dataset\(s\)/);

    const agent = new Agent({ keepAlive: true, maxSockets: 4 });
    const statuses: number[] = [];
    let running = true;
    let r = 0;
    const post = (): Promise<number> =>
      new Promise((resolve) => {
        const body = Buffer.from(`{"vendorid":"c${r++}","trip_distance":1}\n`);
        const req = request(
          `http://127.0.0.1:${port}/ingest`,
          { method: 'POST', agent, headers: { 'content-length': body.length } },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.on('error', () => resolve(0));
        req.end(body);
      });
    const loops = Array.from({ length: 4 }, async () => {
      while (running) statuses.push(await post());
    });
    await sleep(1000);
    const exited = new Promise<number | string | null>((resolve) =>
      proc.once('exit', (code, signal) => resolve(code ?? signal)),
    );
    proc.kill('SIGTERM'); // what `docker stop` sends to PID 1
    await sleep(2000); // inside SHUTDOWN_DELAY_MS: still taking requests
    running = false;
    await Promise.all(loops);
    agent.destroy();
    const exit = await exited;
    expect(statuses.length).toBeGreaterThan(50);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    expect([0, 'SIGTERM']).toContain(exit);
    const rows = readFileSync(join(csvDir, `nyc_taxi-${localDay(new Date())}.csv`), 'utf8')
      .split('\r\n')
      .filter(Boolean);
    expect(rows).toHaveLength(statuses.length);
  }, 120000);
});
