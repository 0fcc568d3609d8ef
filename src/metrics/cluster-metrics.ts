/**
 * One scrape for the whole pm2 cluster, over pm2's own IPC.
 *
 * Under pm2 cluster mode the load balancer hands each scrape to one worker, whose registry holds
 * only its own numbers. So the worker that gets `GET /metrics` asks pm2 for the live workers of
 * this app, sends each one a request with `sendDataToProcessId`, and reads their registries (as
 * prom-client JSON) from pm2's message bus (`launchBus`), with a timeout so a stuck worker cannot
 * stall the scrape. Every series carries its `worker` label, so nothing is summed here: the
 * series are served side by side and Prometheus' `rate()` handles a restarted worker's reset.
 *
 * Why not the alternatives: a port per worker needs a scrape target per worker and a service
 * discovery that follows restarts; prom-client's AggregatorRegistry needs code in the
 * `node:cluster` primary, and pm2 keeps its primary (the God daemon) to itself.
 */
import { randomUUID } from 'node:crypto';
import pm2 from 'pm2';
import {
  AggregatorRegistry,
  type MetricObjectWithValues,
  type MetricValue,
  type Registry,
} from 'prom-client';

const REQUEST_TOPIC = 'ndjson-ingest:metrics-request';
const RESPONSE_TOPIC = 'ndjson-ingest:metrics-response';

type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

interface MetricsRequest {
  topic?: string;
  data?: { requestId?: string };
}

interface BusPacket {
  data?: { requestId?: string; worker?: string; metrics?: MetricsJson };
}

interface Bus {
  on(event: string, listener: (packet: BusPacket) => void): void;
  close?: () => void;
}

/** True when this process is a pm2-managed worker. */
export function underPm2(): boolean {
  return process.env.pm_id !== undefined && typeof process.send === 'function';
}

/** In every worker: answer the metrics requests of the other workers. */
export function answerClusterScrapes(registry: Registry): void {
  if (!underPm2()) return;
  process.on('message', (packet: MetricsRequest) => {
    if (packet?.topic !== REQUEST_TOPIC || typeof packet.data?.requestId !== 'string') return;
    const requestId = packet.data.requestId;
    void registry.getMetricsAsJSON().then((metrics) => {
      process.send?.({
        type: 'process:msg',
        topic: RESPONSE_TOPIC,
        data: { requestId, worker: process.env.pm_id, metrics },
      });
    });
  });
}

export interface ClusterScrape {
  text: string;
  contentType: string;
  workers: number;
  missing: number;
}

export class ClusterScraper {
  private connecting: Promise<Bus> | null = null;
  private readonly pending = new Map<string, (worker: string, metrics: MetricsJson) => void>();

  constructor(
    private readonly local: Registry,
    private readonly timeoutMs: number,
  ) {}

  async scrape(): Promise<ClusterScrape> {
    await this.bus();
    const me = Number(process.env.pm_id);
    const name = process.env.name;
    const peers = (await listProcesses()).filter(
      (p) => p.name === name && p.pm_id !== me && p.pm2_env?.status === 'online',
    );
    const requestId = randomUUID();
    const gathered: MetricsJson[] = [await this.local.getMetricsAsJSON()];
    const answered = new Promise<void>((resolve) => {
      let left = peers.length;
      if (left === 0) resolve();
      this.pending.set(requestId, (_worker, metrics) => {
        gathered.push(metrics);
        if (--left === 0) resolve();
      });
    });
    for (const p of peers) {
      pm2.sendDataToProcessId(
        p.pm_id as number,
        { type: 'process:msg', topic: REQUEST_TOPIC, data: { requestId } },
        () => undefined,
      );
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      answered,
      new Promise<void>((resolve) => (timer = setTimeout(resolve, this.timeoutMs))),
    ]);
    clearTimeout(timer);
    this.pending.delete(requestId);
    const missing = peers.length + 1 - gathered.length;
    // Every series has its own `worker` label, so "sum" only copies each one through; it also
    // keeps metrics whose default aggregator would drop them (process_start_time_seconds).
    for (const metrics of gathered) for (const m of metrics) m.aggregator = 'sum';
    const merged = AggregatorRegistry.aggregate(gathered);
    const text =
      (await merged.metrics()) +
      '# HELP ingest_metrics_workers_missing pm2 workers that did not answer this scrape in time.\n' +
      '# TYPE ingest_metrics_workers_missing gauge\n' +
      `ingest_metrics_workers_missing ${missing}\n`;
    return { text, contentType: this.local.contentType, workers: gathered.length, missing };
  }

  close(): void {
    if (this.connecting !== null) pm2.disconnect();
  }

  private bus(): Promise<Bus> {
    if (this.connecting === null) {
      this.connecting = new Promise<Bus>((resolve, reject) => {
        pm2.connect((err) => {
          if (err) return reject(err);
          pm2.launchBus((busErr: Error | null, bus: Bus) => {
            if (busErr) return reject(busErr);
            bus.on('process:msg', (packet) => {
              const d = packet.data;
              if (d?.requestId === undefined || d.metrics === undefined) return;
              this.pending.get(d.requestId)?.(String(d.worker), d.metrics);
            });
            resolve(bus);
          });
        });
      }).catch((err: unknown) => {
        this.connecting = null;
        throw err;
      });
    }
    return this.connecting;
  }
}

function listProcesses(): Promise<pm2.ProcessDescription[]> {
  return new Promise((resolve, reject) =>
    pm2.list((err, list) => (err ? reject(err) : resolve(list))),
  );
}
