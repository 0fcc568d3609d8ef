import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { CsvHealthIndicator } from './csv.health.js';
import { CsvSinkProvider } from './csv-sink.provider.js';

@Module({
  imports: [TerminusModule],
  providers: [CsvSinkProvider, CsvHealthIndicator],
  exports: [CsvSinkProvider, CsvHealthIndicator],
})
export class CsvModule {}
