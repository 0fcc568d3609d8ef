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

  get lineBufferBytes() {
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

/** The rest of the module's exports, as the service imports them (datasets, the CSV sink). */
export const LONG_LINE_BYTES = 64 * 1024;

export class CellError extends Error {}

export function cellOf() {
  return EMPTY;
}

export function csvCell(text) {
  return /[,"\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export function kernelPoolStats() {
  return { instances: 0, bytes: 0 };
}
