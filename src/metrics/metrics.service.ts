import {
  Inject,
  Injectable,
  Logger,
  type OnModuleInit,
  type OnApplicationShutdown,
} from '@nestjs/common';
import type { IngestConfig } from '../config/config.js';
import { INGEST_CONFIG, INGEST_METRICS } from '../config/tokens.js';
import type { IngestMetrics } from './ingest-metrics.js';
import { ClusterScraper, answerClusterScrapes, underPm2 } from './cluster-metrics.js';

/** `/metrics`: the whole pm2 cluster when run by pm2, this process's registry otherwise. */
@Injectable()
export class MetricsService implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('MetricsService');
  private readonly cluster: ClusterScraper | null;

  constructor(
    @Inject(INGEST_METRICS) private readonly metrics: IngestMetrics,
    @Inject(INGEST_CONFIG) config: IngestConfig,
  ) {
    this.cluster = underPm2()
      ? new ClusterScraper(metrics.registry, config.metricsTimeoutMs)
      : null;
  }

  onModuleInit(): void {
    answerClusterScrapes(this.metrics.registry);
  }

  async scrape(): Promise<{ contentType: string; text: string }> {
    const registry = this.metrics.registry;
    if (this.cluster !== null) {
      try {
        return await this.cluster.scrape();
      } catch (err) {
        // pm2 unreachable: serve this worker's series rather than nothing.
        this.logger.warn(
          `cluster scrape failed, serving this worker only: ${(err as Error).message}`,
        );
      }
    }
    return { contentType: registry.contentType, text: await registry.metrics() };
  }

  onApplicationShutdown(): void {
    this.cluster?.close();
  }
}
