/**
 * Stands in for NdjsonCsvTransform (src/ingest/core/ndjson-csv.ts) with the same interface: every
 * chunk is dropped, no row is produced, no record counted.
 */
const EMPTY = Buffer.alloc(0);

export class NdjsonCsvTransform {
  valid = 0;
  invalid = 0;
  lines = 0;

  get total() {
    return 0;
  }

  push() {
    return EMPTY;
  }

  end() {
    return EMPTY;
  }

  release() {}
}
