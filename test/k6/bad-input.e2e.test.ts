/**
 * The cases of k6/bad-input.js (k6/lib/bad-inputs.js), replayed with node:http against the real
 * service: each error code a client can provoke gets its status and the JSON error shape, the
 * control request to an existing dataset is taken, and nothing of the refused requests is written.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { localDay } from '../../src/csv/csv-committer.js';
import { ERRORS } from '../../src/http/errors.js';
import { answersAsExpected, badInputs } from '../../k6/lib/bad-inputs.js';
import { startServer, type RunningServer } from '../support/server.js';
import { replayBadInput } from '../support/bad-input-replay.js';

const ENV = { TOKEN: 'k6-token', MAX_BODY_BYTES: '1024', DATASET: 'nyc_taxi' };

describe('k6/bad-input.js cases against the real service', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer({
      INGEST_TOKENS: ENV.TOKEN,
      MAX_BODY_BYTES: ENV.MAX_BODY_BYTES,
      CSV_EOL: 'lf',
    });
  });
  afterAll(async () => {
    await server?.stop();
  });

  const cases = badInputs(ENV);
  it.each(cases.map((c) => [c.code ?? 'control', c.method, c.path, c] as const))(
    '%s: %s %s',
    async (_code, _method, _path, c) => {
      const a = await replayBadInput(server.url, c);
      expect({ status: a.status, json: a.json }).toMatchObject({ status: c.status });
      expect(answersAsExpected(c, a.status, a.json)).toBe(true);
      if (c.code !== null) expect(ERRORS[c.code as keyof typeof ERRORS].status).toBe(c.status);
    },
  );

  it('wrote only the control request', () => {
    const file = join(server.csvDir, `nyc_taxi-${localDay(new Date())}.csv`);
    expect(readFileSync(file, 'utf8')).toBe('1,,,\n');
  });
});
