/**
 * bench/no-transform/ stands in for the transform module in `npm run bench` (the service without
 * its transform): it must export what the module exports, and its class must have the members of
 * NdjsonCsvTransform, or the service under it does not start.
 */
import { describe, expect, it } from '@jest/globals';
import * as real from '../../src/ingest/core/ndjson-csv.js';
// @ts-expect-error: a plain ES module without types, loaded as the bench loads it
import * as stub from '../../bench/no-transform/ndjson-csv-stub.mjs';

const members = (cls: { prototype: object }): string[] =>
  Object.getOwnPropertyNames(cls.prototype)
    .filter((n) => n !== 'constructor')
    .sort();

describe('the no-transform stub of bench/', () => {
  it('exports every name the transform module exports', () => {
    expect(Object.keys(stub as object).sort()).toEqual(expect.arrayContaining(Object.keys(real)));
  });

  it('has the accessors of NdjsonCsvTransform and the methods the service calls', () => {
    const proto = real.NdjsonCsvTransform.prototype;
    const accessors = Object.getOwnPropertyNames(proto).filter(
      (n) => Object.getOwnPropertyDescriptor(proto, n)?.get !== undefined,
    );
    const stubbed = (stub as { NdjsonCsvTransform: { prototype: object } }).NdjsonCsvTransform;
    expect(accessors).toContain('lineBufferBytes');
    expect(members(stubbed)).toEqual(
      expect.arrayContaining([...accessors, 'push', 'end', 'release']),
    );
  });
});
