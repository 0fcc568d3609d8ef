/**
 * Jest globalSetup / globalTeardown: every temporary folder the tests create (CSV folders, pm2
 * homes, Prometheus data; test/support/server.ts `tempDir`) goes under one folder per run, which
 * is removed at the end, so `npm test` leaves nothing behind in the system's temp folder (the
 * cluster tests alone write hundreds of MB of CSV).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function setup() {
  process.env.NDJSON_INGEST_TEST_TMP = mkdtempSync(join(tmpdir(), 'ndjson-ingest-test-'));
}

export function teardown() {
  const root = process.env.NDJSON_INGEST_TEST_TMP;
  if (root) rmSync(root, { recursive: true, force: true });
}
