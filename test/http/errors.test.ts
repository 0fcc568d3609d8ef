/** Every error code of the catalogue is documented in the README with its status. */
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ERRORS, IngestError } from '../../src/http/errors.js';
import { ROOT } from '../support/server.js';

describe('error catalogue', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  it.each(Object.entries(ERRORS))('%s is in the README with its status', (code, info) => {
    expect(readme).toMatch(new RegExp(`\\| \`${code}\` +\\| ${info.status} +\\|`));
  });
});

describe('IngestError', () => {
  it('carries no stack trace for a client error or a refusal for load, and keeps one otherwise', () => {
    const frames = (e: Error) => (e.stack ?? '').split('\n').filter((l) => /^\s+at /.test(l));
    expect(frames(new IngestError('bad_request'))).toEqual([]);
    expect(frames(new IngestError('overloaded', undefined, { retryAfter: 1 }))).toEqual([]);
    expect(frames(new IngestError('lock_timeout')).length).toBeGreaterThan(0);
    // The limit is put back: other errors keep their stacks.
    expect(frames(new Error('x')).length).toBeGreaterThan(0);
    const e = new IngestError('bad_request', 'why');
    expect([e.message, e.status, e.code, e.name]).toEqual([
      'why',
      400,
      'bad_request',
      'IngestError',
    ]);
  });
});
