/**
 * The service's Prometheus metrics, on an injected Registry (not prom-client's global one).
 * Everything is created here, once; the hot path only increments pre-bound children.
 * Every series carries `worker` (the pm2 instance id), so the series of all workers can be served
 * side by side and `rate()` stays right when one restarts.
 */
import { statfs } from 'node:fs/promises';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { FastHistogram } from './fast-histogram.js';

/** 100 µs … 10 s, for per-request parse and request latency. */
export const LATENCY_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];
/** 10 µs … 10 s: a commit of a typical request takes tens of microseconds. */
export const WRITE_BUCKETS = [
  0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
  0.25, 0.5, 1, 2.5, 5, 10,
];

export function workerId(): string {
  return process.env.NODE_APP_INSTANCE ?? process.env.pm_id ?? '0';
}

export class IngestMetrics {
  readonly registry = new Registry();
  readonly receivedBytes: Counter;
  readonly decodedBytes: Counter;
  readonly recordsValid: { inc(n: number): void };
  readonly recordsInvalid: { inc(n: number): void };
  readonly requests: Counter<'status'>;
  readonly parseDuration: FastHistogram;
  readonly requestDuration: FastHistogram;
  readonly writeDuration: FastHistogram;
  readonly writtenBytes: Counter;
  readonly inFlight: Gauge;
  private readonly statusChildren = new Map<number, { inc(): void }>();

  /**
   * @param enabled false only to measure what metrics cost (METRICS_ENABLED=false): the ingest
   * path then records nothing and /metrics serves the process metrics alone.
   */
  constructor(
    csvDir: string,
    readonly enabled = true,
  ) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ worker: workerId() });
    collectDefaultMetrics({ register: this.registry });
    this.receivedBytes = new Counter({
      name: 'ingest_received_bytes_total',
      help: 'Request body bytes as received (before decompression).',
      registers,
    });
    this.decodedBytes = new Counter({
      name: 'ingest_decoded_bytes_total',
      help: 'Request body bytes after decompression.',
      registers,
    });
    const records = new Counter({
      name: 'ingest_records_total',
      help: 'Records seen, by result (valid rows written, invalid lines quarantined).',
      labelNames: ['result'],
      registers,
    });
    this.recordsValid = records.labels('valid');
    this.recordsInvalid = records.labels('invalid');
    this.requests = new Counter({
      name: 'ingest_requests_total',
      help: 'Ingest requests answered, by HTTP status.',
      labelNames: ['status'],
      registers,
    });
    this.parseDuration = new FastHistogram(
      'ingest_parse_duration_seconds',
      'Time spent decoding and transforming one request body (per request).',
      LATENCY_BUCKETS,
      this.registry,
    );
    this.requestDuration = new FastHistogram(
      'ingest_request_duration_seconds',
      'Time from the start of an ingest request to its answer.',
      LATENCY_BUCKETS,
      this.registry,
    );
    this.writeDuration = new FastHistogram(
      'csv_write_duration_seconds',
      'Time to commit one request: lock, repair check, append, unlock.',
      WRITE_BUCKETS,
      this.registry,
    );
    this.writtenBytes = new Counter({
      name: 'csv_written_bytes_total',
      help: 'Bytes appended to the CSV files.',
      registers,
    });
    this.inFlight = new Gauge({
      name: 'ingest_in_flight_requests',
      help: 'Ingest requests being received or committed.',
      registers,
    });
    new Gauge({
      name: 'csv_disk_free_bytes',
      help: 'Free bytes on the file system of the CSV folder (for unprivileged users).',
      registers,
      async collect() {
        try {
          const s = await statfs(csvDir);
          this.set(s.bavail * s.bsize);
        } catch {
          // The folder is gone or unreadable: no sample rather than a wrong one.
        }
      },
    });
  }

  /** Counts an answered ingest request (children are cached per status). */
  countRequest(status: number): void {
    let child = this.statusChildren.get(status);
    if (child === undefined) {
      child = this.requests.labels(String(status));
      this.statusChildren.set(status, child);
    }
    child.inc();
  }
}
