/** Every error code of the catalogue is documented in the README with its status. */
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ERRORS } from '../../src/http/errors.js';
import { ROOT } from '../support/server.js';

describe('error catalogue', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  it.each(Object.entries(ERRORS))('%s is in the README with its status', (code, info) => {
    expect(readme).toMatch(new RegExp(`\\| \`${code}\` +\\| ${info.status} +\\|`));
  });
});
