/**
 * A 1-minute soak (bench/soak.ts, `npm run soak -- --minutes 1`): the real pm2 cluster under a
 * steady load with a kill -9, a day-file rename, a pm2 reload and (as root) a full disk; no
 * acknowledged row lost, duplicated or torn, no rows of failed requests, no growth of RSS or
 * descriptors. The runner's own checks decide its exit code; this test also reads its report.
 */
import { describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { ROOT } from '../support/server.js';

describe('soak, 1 minute', () => {
  it('passes every check of the soak runner with every fault injected', async () => {
    const proc = spawn(
      process.execPath,
      ['--import', '@swc-node/register/esm-register', 'bench/soak.ts', '--minutes', '1'],
      { cwd: ROOT, env: process.env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => proc.once('exit', resolve));
    expect(out).not.toMatch(/^FAIL/m);
    expect(code).toBe(0);
    expect(out).toMatch(/^PASS {2}acknowledged rows lost: 0$/m);
    expect(out).toMatch(/^PASS {2}lines that are not whole rows: 0$/m);
    for (const fault of ['kill -9 of a worker', 'rename of the day file', 'pm2 reload']) {
      expect(out).toContain(fault);
    }
    if (process.getuid?.() === 0) expect(out).toContain('full disk for 3 s');
    const acked = /(\d[\d,]*) acknowledged/.exec(out);
    expect(Number(acked?.[1].replaceAll(',', ''))).toBeGreaterThan(1000);
  }, 240000);
});
