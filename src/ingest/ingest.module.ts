import { Module } from '@nestjs/common';
import { CsvModule } from '../csv/csv.module.js';
import { IngestController } from './ingest.controller.js';
import { IngestService } from './ingest.service.js';
import { ShutdownDrain } from './shutdown-drain.js';

@Module({
  imports: [CsvModule],
  controllers: [IngestController],
  providers: [IngestService, ShutdownDrain],
  exports: [ShutdownDrain],
})
export class IngestModule {}
