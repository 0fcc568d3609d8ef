import { Inject, Injectable } from '@nestjs/common';
import { INGEST_METRICS } from '../tokens.js';
import type { IngestMetrics } from './ingest-metrics.js';

@Injectable()
export class MetricsService {
  constructor(@Inject(INGEST_METRICS) private readonly metrics: IngestMetrics) {}

  async scrape(): Promise<{ contentType: string; text: string }> {
    const registry = this.metrics.registry;
    return { contentType: registry.contentType, text: await registry.metrics() };
  }
}
