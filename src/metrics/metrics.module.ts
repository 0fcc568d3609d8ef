import { Global, Module, type DynamicModule } from '@nestjs/common';
import type { IngestConfig } from '../config/config.js';
import { INGEST_METRICS } from '../config/tokens.js';
import { IngestMetrics } from './ingest-metrics.js';
import { MetricsController } from './metrics.controller.js';
import { MetricsService } from './metrics.service.js';

@Global()
@Module({})
export class MetricsModule {
  static forRoot(config: IngestConfig): DynamicModule {
    return {
      module: MetricsModule,
      controllers: [MetricsController],
      providers: [
        {
          provide: INGEST_METRICS,
          useFactory: () =>
            new IngestMetrics(
              config.csvDir,
              config.metricsEnabled,
              config.datasets.datasets.map((d) => d.name),
            ),
        },
        MetricsService,
      ],
      exports: [INGEST_METRICS, MetricsService],
    };
  }
}
