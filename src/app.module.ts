import { Global, Module, type DynamicModule } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import type { IngestConfig } from './config/config.js';
import { INGEST_CONFIG } from './config/tokens.js';
import { MetricsModule } from './metrics/metrics.module.js';
import { IngestModule } from './ingest/ingest.module.js';
import { HealthModule } from './health/health.module.js';
import { ErrorShapeFilter } from './http/error-shape.filter.js';

@Global()
@Module({})
export class AppModule {
  static forRoot(config: IngestConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [MetricsModule.forRoot(config), IngestModule, HealthModule],
      providers: [
        { provide: INGEST_CONFIG, useValue: config },
        { provide: APP_FILTER, useClass: ErrorShapeFilter },
      ],
      exports: [INGEST_CONFIG],
    };
  }
}
