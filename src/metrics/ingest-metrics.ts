/**
 * The service's Prometheus metrics, on an injected Registry (not prom-client's global one).
 * Everything is created here, once. The hot path does plain additions: counters are tallied in
 * numbers and folded into the prom-client counters when a scrape collects them, the in-flight
 * gauge reads the live count at collection, and the histograms are FastHistograms (see
 * fast-histogram.ts for the measurement behind that). Every series carries `worker` (the pm2
 * instance id), so the series of all workers can be served side by side and `rate()` stays right
 * when one restarts.
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

/** One committed request, as the ingest path reports it. */
export interface IngestRecord {
  receivedBytes: number;
  decodedBytes: number;
  writtenBytes: number;
  valid: number;
  invalid: number;
  parseSeconds: number;
  writeSeconds: number;
}

export class IngestMetrics {
  readonly registry = new Registry();
  readonly parseDuration: FastHistogram;
  readonly requestDuration: FastHistogram;
  readonly writeDuration: FastHistogram;
  /** Reads the number of requests in flight (set by the component that counts them). */
  inFlightSource: () => number = () => 0;

  // Tallies since the last collection.
  private received = 0;
  private decoded = 0;
  private written = 0;
  private valid = 0;
  private invalid = 0;
  private readonly statuses = new Map<number, number>();

  private readonly receivedBytes: Counter;
  private readonly decodedBytes: Counter;
  private readonly writtenBytes: Counter;
  private readonly records: Counter<'result'>;
  private readonly requests: Counter<'status'>;

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
    // Any collection folds every tally in, so each counter's collect does the same.
    const collect = () => this.fold();
    this.receivedBytes = new Counter({
      name: 'ingest_received_bytes_total',
      help: 'Request body bytes as received (before decompression).',
      registers,
      collect,
    });
    this.decodedBytes = new Counter({
      name: 'ingest_decoded_bytes_total',
      help: 'Request body bytes after decompression.',
      registers,
      collect,
    });
    this.records = new Counter({
      name: 'ingest_records_total',
      help: 'Records seen, by result (valid rows written, invalid lines quarantined).',
      labelNames: ['result'],
      registers,
      collect,
    });
    this.records.labels('valid').inc(0);
    this.records.labels('invalid').inc(0);
    this.requests = new Counter({
      name: 'ingest_requests_total',
      help: 'Ingest requests answered, by HTTP status.',
      labelNames: ['status'],
      registers,
      collect,
    });
    this.writtenBytes = new Counter({
      name: 'csv_written_bytes_total',
      help: 'Bytes appended to the CSV files.',
      registers,
      collect,
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
    const inFlight = () => this.inFlightSource();
    new Gauge({
      name: 'ingest_in_flight_requests',
      help: 'Ingest requests being received or committed.',
      registers,
      collect() {
        this.set(inFlight());
      },
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

  /** A committed request: byte and record tallies and the parse/write latencies. */
  recordIngest(r: IngestRecord): void {
    if (!this.enabled) return;
    this.received += r.receivedBytes;
    this.decoded += r.decodedBytes;
    this.written += r.writtenBytes;
    this.valid += r.valid;
    this.invalid += r.invalid;
    this.parseDuration.observe(r.parseSeconds);
    this.writeDuration.observe(r.writeSeconds);
  }

  /** An answered ingest request: its status and how long it took. */
  recordAnswer(status: number, seconds: number): void {
    if (!this.enabled) return;
    this.statuses.set(status, (this.statuses.get(status) ?? 0) + 1);
    this.requestDuration.observe(seconds);
  }

  /** Moves the tallies into the prom-client counters (called when a scrape collects). */
  private fold(): void {
    if (this.received > 0) this.receivedBytes.inc(this.received);
    if (this.decoded > 0) this.decodedBytes.inc(this.decoded);
    if (this.written > 0) this.writtenBytes.inc(this.written);
    if (this.valid > 0) this.records.labels('valid').inc(this.valid);
    if (this.invalid > 0) this.records.labels('invalid').inc(this.invalid);
    this.received = this.decoded = this.written = this.valid = this.invalid = 0;
    for (const [status, n] of this.statuses) this.requests.labels(String(status)).inc(n);
    this.statuses.clear();
  }
}
