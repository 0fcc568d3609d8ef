import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { CsvModule } from '../csv/csv.module.js';
import { IngestModule } from '../ingest/ingest.module.js';
import { HealthController } from './health.controller.js';

@Module({
  imports: [TerminusModule.forRoot({ logger: false }), CsvModule, IngestModule],
  controllers: [HealthController],
})
export class HealthModule {}
