import { IdleMemoryRelease } from '../runtime/memory-release.js';
import {
  Inject,
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnModuleDestroy,
} from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { Server, ServerResponse } from 'node:http';
import type { IngestConfig } from '../config/config.js';
import { INGEST_CONFIG, INGEST_METRICS } from '../config/tokens.js';
import type { IngestMetrics } from '../metrics/ingest-metrics.js';

/** How long idle keep-alive clients get to send their next request once draining starts. */
const KEEP_ALIVE_GRACE_MS = 1000;

/**
 * Graceful drain (SPEC §7). On SIGINT/SIGTERM, before Nest closes Fastify:
 *  1. readiness turns 503 and every answer carries `Connection: close`;
 *  2. the listening socket closes (pm2's cluster master stops sending this worker connections),
 *     but idle keep-alive connections are NOT reset — Node's `server.close()` would do that, so
 *     it is held back — their next request is answered, with `Connection: close`;
 *  3. the requests in flight finish (at most SHUTDOWN_TIMEOUT_MS);
 *  4. after a short grace the remaining idle connections close and Nest goes on with the shutdown
 *     (the CSV descriptors close last, in CsvSinkProvider).
 */
@Injectable()
export class ShutdownDrain implements OnModuleDestroy, BeforeApplicationShutdown {
  private readonly logger = new Logger('ShutdownDrain');
  /** Readiness reads this; see onModuleDestroy. */
  draining = false;
  inFlight = 0;
  private started = false;
  private idleWaiters: (() => void)[] = [];
  /** A full GC once idle after a burst (memory-release.ts). */
  readonly memory = new IdleMemoryRelease(() => this.inFlight);

  constructor(
    @Inject(INGEST_CONFIG) private readonly config: IngestConfig,
    @Inject(INGEST_METRICS) metrics: IngestMetrics,
    private readonly adapterHost: HttpAdapterHost,
  ) {
    metrics.inFlightSource = () => this.inFlight;
  }

  /** Counts a request in flight; call the returned function when it is answered. */
  begin(): () => void {
    this.inFlight++;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.inFlight--;
      if (this.inFlight === 0) {
        for (const w of this.idleWaiters.splice(0)) w();
        this.memory.idle();
      }
    };
  }

  /**
   * Readiness turns in Nest's first shutdown phase. Terminus' own flag, which makes every later
   * health answer 503 `shutting_down`, is set in the next phase (its beforeApplicationShutdown);
   * turning ours first means no such answer lacks the `shutdown` check naming the drain.
   */
  onModuleDestroy(): void {
    this.draining = true;
    this.memory.stop();
  }

  async beforeApplicationShutdown(signal?: string): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.draining = true;
    const server = this.adapterHost.httpAdapter?.getHttpServer() as Server | undefined;
    if (server === undefined) return;
    // SPEC §7: a lame-duck period. /health is already 503 (onModuleDestroy); the listener stays
    // open and every request is answered as usual until the balancer, which polls /health, has
    // taken this host out; closing at once would refuse the connections it still sends meanwhile.
    if (this.config.shutdownDelayMs > 0) {
      this.logger.log(
        `unready (${signal ?? 'close'}): still accepting for SHUTDOWN_DELAY_MS (${this.config.shutdownDelayMs} ms) before draining`,
      );
      await sleep(this.config.shutdownDelayMs);
    }
    this.logger.log(`draining (${signal ?? 'close'}): ${this.inFlight} requests in flight`);
    // Before Fastify's handler: every answer from now on closes its connection.
    server.prependListener('request', (_req, res: ServerResponse) =>
      res.setHeader('connection', 'close'),
    );
    const closeIdle = server.closeIdleConnections.bind(server);
    server.closeIdleConnections = () => undefined;
    server.close();
    const deadline = Date.now() + this.config.shutdownTimeoutMs;
    if (this.inFlight > 0) {
      await Promise.race([
        new Promise<void>((resolve) => this.idleWaiters.push(resolve)),
        sleep(this.config.shutdownTimeoutMs),
      ]);
    }
    await sleep(Math.min(KEEP_ALIVE_GRACE_MS, Math.max(0, deadline - Date.now())));
    // Requests that came on kept-alive connections during the grace finish too.
    if (this.inFlight > 0) {
      await Promise.race([
        new Promise<void>((resolve) => this.idleWaiters.push(resolve)),
        sleep(Math.max(0, deadline - Date.now())),
      ]);
    }
    server.closeIdleConnections = closeIdle;
    closeIdle();
    this.logger.log(`drained: ${this.inFlight} requests still in flight`);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
