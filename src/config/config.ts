/**
 * Configuration from the environment (SPEC §2), validated once at start-up. A `.env` file in the
 * working directory may add variables; the environment wins over it.
 */
import { availableParallelism, hostname } from 'node:os';
import { resolve } from 'node:path';
import {
  DatasetsFileError,
  legacyDataset,
  loadDatasetsFile,
  type DatasetsDefinition,
} from '../datasets/datasets-file.js';

export interface IngestConfig {
  port: number;
  host: string;
  csvDir: string;
  csvPrefix: string;
  csvColumns: string[];
  csvEol: 'crlf' | 'lf';
  /** The datasets (DATASETS_FILE, SPEC §8), or the one of CSV_PREFIX/CSV_COLUMNS/CSV_EOL. */
  datasets: DatasetsDefinition;
  /** DATASETS_FILE as given (empty: none). */
  datasetsFile: string;
  /** NODE_NAME: in every file name when set (SPEC §6); empty: none. */
  nodeName: string;
  /** The `node` meta column: NODE_NAME, else the host name. */
  nodeLabel: string;
  csvFsync: boolean;
  maxBodyBytes: number;
  maxDecodedBytes: number;
  maxLineBytes: number;
  ingestTokens: string[];
  bodyTimeoutMs: number;
  requestTimeoutMs: number;
  /** Bytes/s: a body whose average rate since the request began falls below it gets 408 (0: off). */
  minBodyRate: number;
  /** How long a request may take before MIN_BODY_RATE applies. */
  minBodyRateGraceMs: number;
  instances: number | 'max';
  /** Pending rows of one request beyond this many bytes spill to a temporary file. */
  spillThresholdBytes: number;
  /** Requests handled at once by one worker before it answers 503. */
  maxInFlight: number;
  /** Shed ingest requests (503) while the event loop's mean delay is above this (0: off). */
  shedEventLoopDelayMs: number;
  /** Shed ingest requests (503) while event-loop utilization is above this, 0–1 (0: off). */
  shedEventLoopUtilization: number;
  /** How often both are sampled (their window). */
  shedSampleMs: number;
  /** Shed the rest of an event-loop turn's new ingest requests once it has run this long (0: off). */
  shedEventLoopTurnMs: number;
  /** Largest window a zstd frame or brotli stream may declare (413 `window_too_large` beyond). */
  maxDecoderWindowBytes: number;
  /** Decoder memory (windows) all requests of one worker may hold at once (503 beyond). */
  decoderMemoryBytes: number;
  /** Room for long lines being read at once in a worker (long-line-budget.ts). */
  longLineMemoryBytes: number;
  /** Quarantine records of one request, in bytes (413 `quarantine_too_large` beyond). */
  maxQuarantineBytes: number;
  /** How long a commit waits for the inter-process lock before 500 `lock_timeout`. */
  lockTimeoutMs: number;
  /** /health turns 503 when the CSV folder's file system has less free space than this. */
  healthMinFreeBytes: number;
  /** How long a stopping worker waits for the requests in flight. */
  shutdownTimeoutMs: number;
  /** SHUTDOWN_DELAY_MS: on SIGTERM/SIGINT, how long to keep accepting, unready, before draining. */
  shutdownDelayMs: number;
  /** Per-worker metrics collection timeout when /metrics gathers the whole pm2 cluster. */
  metricsTimeoutMs: number;
  /** false: the ingest path records no metrics (to measure their cost). */
  metricsEnabled: boolean;
  logLevel: string;
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`invalid configuration: ${variable} ${message}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

function text(env: Env, name: string, fallback: string): string {
  const v = env[name];
  return v === undefined || v.trim() === '' ? fallback : v.trim();
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = text(env, name, String(fallback));
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `must be a whole number, got "${raw}"`);
  const n = Number(raw);
  if (n < min || n > max) {
    throw new ConfigError(name, `must be between ${min} and ${max}, got ${raw}`);
  }
  return n;
}

function bool(env: Env, name: string, fallback: boolean): boolean {
  const raw = text(env, name, String(fallback)).toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(raw)) return true;
  if (['false', '0', 'no', 'off'].includes(raw)) return false;
  throw new ConfigError(name, `must be true or false, got "${raw}"`);
}

function fraction(env: Env, name: string, fallback: number): number {
  const raw = text(env, name, String(fallback));
  const n = Number(raw);
  if (!/^(0|1|0?\.\d+|1\.0*)$/.test(raw) || !(n >= 0 && n <= 1)) {
    throw new ConfigError(name, `must be a number from 0 to 1, got "${raw}"`);
  }
  return n;
}

function list(raw: string): string[] {
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

export function loadConfig(env: Env = process.env): IngestConfig {
  const csvPrefix = text(env, 'CSV_PREFIX', 'nyc_taxi');
  if (!/^[A-Za-z0-9._-]+$/.test(csvPrefix) || csvPrefix.startsWith('.')) {
    throw new ConfigError('CSV_PREFIX', `must be a file name part of letters, digits, . _ -`);
  }
  const csvColumns = list(
    text(env, 'CSV_COLUMNS', 'vendorid,tpep_pickup_datetime,trip_distance,total_amount'),
  );
  if (csvColumns.length === 0) throw new ConfigError('CSV_COLUMNS', 'must name at least one field');
  if (new Set(csvColumns).size !== csvColumns.length) {
    throw new ConfigError('CSV_COLUMNS', 'must not name a field twice');
  }
  const eol = text(env, 'CSV_EOL', 'crlf').toLowerCase();
  if (eol !== 'crlf' && eol !== 'lf')
    throw new ConfigError('CSV_EOL', `must be crlf or lf, got "${eol}"`);
  const instancesRaw = text(env, 'INSTANCES', 'max');
  let instances: number | 'max' = 'max';
  if (instancesRaw !== 'max' && instancesRaw !== '0' && instancesRaw !== '-1') {
    instances = integer(env, 'INSTANCES', 1, 1, 1024);
  }
  const host = text(env, 'HOST', '0.0.0.0');
  const tokens = list(env.INGEST_TOKENS ?? '');
  for (const t of tokens) {
    if (!/^[\x21-\x7e]+$/.test(t)) {
      throw new ConfigError('INGEST_TOKENS', 'tokens must be printable ASCII without spaces');
    }
  }
  const nodeName = text(env, 'NODE_NAME', '');
  if (nodeName !== '' && !/^[A-Za-z0-9_.-]{1,64}$/.test(nodeName)) {
    throw new ConfigError('NODE_NAME', 'must match [A-Za-z0-9_.-]{1,64}');
  }
  const datasetsFile = text(env, 'DATASETS_FILE', '');
  let datasets: DatasetsDefinition;
  if (datasetsFile === '') {
    const only = legacyDataset(csvPrefix, csvColumns, eol);
    datasets = { datasets: [only], defaultName: only.name };
  } else {
    try {
      datasets = loadDatasetsFile(resolve(datasetsFile), eol);
    } catch (err) {
      if (!(err instanceof DatasetsFileError)) throw err;
      throw new ConfigError('DATASETS_FILE', err.message.replace(/^DATASETS_FILE /, ''));
    }
  }
  return {
    port: integer(env, 'PORT', 8888, 0, 65535),
    host,
    csvDir: resolve(text(env, 'CSV_DIR', './csv')),
    csvPrefix,
    csvColumns,
    csvEol: eol,
    datasets,
    datasetsFile,
    nodeName,
    nodeLabel: nodeName === '' ? hostname() : nodeName,
    csvFsync: bool(env, 'CSV_FSYNC', false),
    maxBodyBytes: integer(env, 'MAX_BODY_BYTES', 104857600, 1, Number.MAX_SAFE_INTEGER),
    maxDecodedBytes: integer(env, 'MAX_DECODED_BYTES', 1073741824, 1, Number.MAX_SAFE_INTEGER),
    maxLineBytes: integer(env, 'MAX_LINE_BYTES', 1048576, 1, 1 << 30),
    ingestTokens: tokens,
    bodyTimeoutMs: integer(env, 'BODY_TIMEOUT_MS', 30000, 1, 2 ** 31 - 1),
    requestTimeoutMs: integer(env, 'REQUEST_TIMEOUT_MS', 600000, 1, 2 ** 31 - 1),
    minBodyRate: integer(env, 'MIN_BODY_RATE', 240, 0, 2 ** 31 - 1),
    minBodyRateGraceMs: integer(env, 'MIN_BODY_RATE_GRACE_MS', 5000, 0, 2 ** 31 - 1),
    instances,
    spillThresholdBytes: integer(env, 'SPILL_THRESHOLD_BYTES', 262144, 0, 1 << 30),
    maxInFlight: integer(env, 'MAX_IN_FLIGHT', 256, 1, 1 << 20),
    shedEventLoopDelayMs: integer(env, 'SHED_EVENT_LOOP_DELAY_MS', 50, 0, 60000),
    shedEventLoopUtilization: fraction(env, 'SHED_EVENT_LOOP_UTILIZATION', 0),
    shedSampleMs: integer(env, 'SHED_SAMPLE_MS', 50, 30, 60000),
    shedEventLoopTurnMs: integer(env, 'SHED_EVENT_LOOP_TURN_MS', 50, 0, 60000),
    maxDecoderWindowBytes: integer(env, 'MAX_DECODER_WINDOW_BYTES', 8388608, 1024, 1 << 30),
    decoderMemoryBytes: integer(env, 'DECODER_MEMORY_BYTES', 134217728, 1 << 20, 2 ** 40),
    longLineMemoryBytes: integer(env, 'LONG_LINE_MEMORY_BYTES', 33554432, 1, 2 ** 40),
    maxQuarantineBytes: integer(env, 'MAX_QUARANTINE_BYTES', 67108864, 1, Number.MAX_SAFE_INTEGER),
    lockTimeoutMs: integer(env, 'LOCK_TIMEOUT_MS', 5000, 1, 2 ** 31 - 1),
    healthMinFreeBytes: integer(
      env,
      'HEALTH_MIN_FREE_BYTES',
      268435456,
      0,
      Number.MAX_SAFE_INTEGER,
    ),
    shutdownTimeoutMs: integer(env, 'SHUTDOWN_TIMEOUT_MS', 10000, 0, 2 ** 31 - 1),
    shutdownDelayMs: integer(env, 'SHUTDOWN_DELAY_MS', 0, 0, 2 ** 31 - 1),
    metricsTimeoutMs: integer(env, 'METRICS_TIMEOUT_MS', 1000, 1, 60000),
    metricsEnabled: bool(env, 'METRICS_ENABLED', true),
    logLevel: text(env, 'LOG_LEVEL', 'info'),
  };
}

export function workerCount(config: IngestConfig): number {
  return config.instances === 'max' ? availableParallelism() : config.instances;
}
