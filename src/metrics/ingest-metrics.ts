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
import type { ShedCheck } from '../runtime/load-shedder.js';
import { FastHistogram, type HistogramSeries } from './fast-histogram.js';

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

/** The tallies and histogram series of one dataset (SPEC §8: a `dataset` label). */
class DatasetSeries {
  received = 0;
  decoded = 0;
  written = 0;
  valid = 0;
  invalid = 0;
  readonly statuses = new Map<number, number>();

  constructor(
    readonly parse: HistogramSeries,
    readonly request: HistogramSeries,
    readonly write: HistogramSeries,
  ) {}
}

export class IngestMetrics {
  readonly registry = new Registry();
  readonly parseDuration: FastHistogram;
  readonly requestDuration: FastHistogram;
  readonly writeDuration: FastHistogram;
  /** Reads the number of requests in flight (set by the component that counts them). */
  inFlightSource: () => number = () => 0;
  /** Reads the long-line budget (set by the ingest service). */
  longLineSource: () => { reserved: number; waiting: number; waits: number } = () => ({
    reserved: 0,
    waiting: 0,
    waits: 0,
  });

  /** Reads the decoders' refusals for DECODER_MEMORY_BYTES so far (set by the ingest service). */
  decoderRefusalSource: () => number = () => 0;
  /** Ingest requests refused by the load checks (503 `overloaded`) so far, by check. */
  private readonly shed: Record<ShedCheck, number> = {
    in_flight: 0,
    event_loop: 0,
    turn: 0,
  };

  /** Tallies since the last collection, by dataset ('' for requests refused before one is known). */
  private readonly datasets = new Map<string, DatasetSeries>();

  private readonly receivedBytes: Counter<'dataset'>;
  private readonly decodedBytes: Counter<'dataset'>;
  private readonly writtenBytes: Counter<'dataset'>;
  private readonly records: Counter<'dataset' | 'result'>;
  private readonly requests: Counter<'dataset' | 'status'>;

  /**
   * @param enabled false only to measure what metrics cost (METRICS_ENABLED=false): the ingest
   * path then records nothing and /metrics serves the process metrics alone.
   */
  constructor(
    csvDir: string,
    readonly enabled = true,
    /** The configured datasets: their record counters start at zero. */
    datasetNames: readonly string[] = [],
  ) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ worker: workerId() });
    collectDefaultMetrics({ register: this.registry });
    // Any collection folds every tally in, so each counter's collect does the same.
    const collect = () => this.fold();
    this.receivedBytes = new Counter({
      name: 'ingest_received_bytes_total',
      help: 'Request body bytes as received (before decompression).',
      labelNames: ['dataset'],
      registers,
      collect,
    });
    this.decodedBytes = new Counter({
      name: 'ingest_decoded_bytes_total',
      help: 'Request body bytes after decompression.',
      labelNames: ['dataset'],
      registers,
      collect,
    });
    this.records = new Counter({
      name: 'ingest_records_total',
      help: 'Records seen, by result (valid rows written, invalid lines quarantined).',
      labelNames: ['dataset', 'result'],
      registers,
      collect,
    });
    this.requests = new Counter({
      name: 'ingest_requests_total',
      help: 'Ingest requests answered, by HTTP status.',
      labelNames: ['dataset', 'status'],
      registers,
      collect,
    });
    this.writtenBytes = new Counter({
      name: 'csv_written_bytes_total',
      help: 'Bytes appended to the CSV files.',
      labelNames: ['dataset'],
      registers,
      collect,
    });
    this.parseDuration = new FastHistogram(
      'ingest_parse_duration_seconds',
      'Time spent decoding and transforming one request body (per request).',
      LATENCY_BUCKETS,
      this.registry,
      'dataset',
    );
    this.requestDuration = new FastHistogram(
      'ingest_request_duration_seconds',
      'Time from the start of an ingest request to its answer.',
      LATENCY_BUCKETS,
      this.registry,
      'dataset',
    );
    this.writeDuration = new FastHistogram(
      'csv_write_duration_seconds',
      'Time to commit one request: lock, repair check, append, unlock.',
      WRITE_BUCKETS,
      this.registry,
      'dataset',
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
    const longLines = () => this.longLineSource();
    const shed = this.shed;
    const decoderRefusals = () => this.decoderRefusalSource();
    new Counter({
      name: 'ingest_shed_requests_total',
      help: 'Ingest requests refused for load (503 overloaded), by the check that refused them: in_flight (MAX_IN_FLIGHT), event_loop (SHED_EVENT_LOOP_DELAY_MS, SHED_EVENT_LOOP_UTILIZATION), turn (SHED_EVENT_LOOP_TURN_MS), decoder_memory (DECODER_MEMORY_BYTES).',
      labelNames: ['reason'],
      registers,
      collect() {
        this.reset();
        for (const [reason, n] of Object.entries(shed)) this.labels(reason).inc(n);
        this.labels('decoder_memory').inc(decoderRefusals());
      },
    });
    new Gauge({
      name: 'ingest_long_line_waiting_requests',
      help: 'Requests waiting, body paused, for room to read a long line (LONG_LINE_MEMORY_BYTES).',
      registers,
      collect() {
        this.set(longLines().waiting);
      },
    });
    new Counter({
      name: 'ingest_long_line_waits_total',
      help: 'Requests that had to wait for room to read a long line (LONG_LINE_MEMORY_BYTES).',
      registers,
      collect() {
        this.reset();
        this.inc(longLines().waits);
      },
    });
    new Gauge({
      name: 'ingest_long_line_reserved_bytes',
      help: 'Room reserved by the long lines being read (at most LONG_LINE_MEMORY_BYTES, or one line).',
      registers,
      collect() {
        this.set(longLines().reserved);
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
    for (const name of datasetNames) {
      this.records.labels(name, 'valid').inc(0);
      this.records.labels(name, 'invalid').inc(0);
    }
  }

  private series(dataset: string): DatasetSeries {
    let s = this.datasets.get(dataset);
    if (s === undefined) {
      s = new DatasetSeries(
        this.parseDuration.labels(dataset),
        this.requestDuration.labels(dataset),
        this.writeDuration.labels(dataset),
      );
      this.datasets.set(dataset, s);
    }
    return s;
  }

  /** A committed request: byte and record tallies and the parse/write latencies. */
  recordIngest(r: IngestRecord, dataset: string): void {
    if (!this.enabled) return;
    const s = this.series(dataset);
    s.received += r.receivedBytes;
    s.decoded += r.decodedBytes;
    s.written += r.writtenBytes;
    s.valid += r.valid;
    s.invalid += r.invalid;
    s.parse.observe(r.parseSeconds);
    s.write.observe(r.writeSeconds);
  }

  /**
   * An answered ingest request: its status and how long it took. `dataset` is '' for a request
   * refused before its dataset was known (an unknown dataset's name is not a label value: a client
   * could make up any number of them).
   */
  recordAnswer(status: number, seconds: number, dataset: string): void {
    if (!this.enabled) return;
    const s = this.series(dataset);
    s.statuses.set(status, (s.statuses.get(status) ?? 0) + 1);
    s.request.observe(seconds);
  }

  /** An ingest request refused for load, by the check that refused it. */
  recordShed(reason: ShedCheck): void {
    if (this.enabled) this.shed[reason]++;
  }

  /** Moves the tallies into the prom-client counters (called when a scrape collects). */
  private fold(): void {
    for (const [dataset, s] of this.datasets) {
      if (s.received > 0) this.receivedBytes.labels(dataset).inc(s.received);
      if (s.decoded > 0) this.decodedBytes.labels(dataset).inc(s.decoded);
      if (s.written > 0) this.writtenBytes.labels(dataset).inc(s.written);
      if (s.valid > 0) this.records.labels(dataset, 'valid').inc(s.valid);
      if (s.invalid > 0) this.records.labels(dataset, 'invalid').inc(s.invalid);
      s.received = s.decoded = s.written = s.valid = s.invalid = 0;
      for (const [status, n] of s.statuses) this.requests.labels(dataset, String(status)).inc(n);
      s.statuses.clear();
    }
  }
}
