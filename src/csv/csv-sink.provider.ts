import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import type { IngestConfig } from '../config.js';
import { INGEST_CONFIG } from '../tokens.js';
import { CsvCommitter, type CommitResult } from './csv-committer.js';
import type { PendingBytes } from './pending-bytes.js';

/**
 * The Nest face of the CSV writer: one committer per worker, holding the append descriptors,
 * closed after the requests in flight have drained (SPEC §6–7).
 */
@Injectable()
export class CsvSinkProvider implements OnApplicationShutdown {
  private readonly committer: CsvCommitter;

  constructor(@Inject(INGEST_CONFIG) config: IngestConfig) {
    this.committer = new CsvCommitter({
      dir: config.csvDir,
      prefix: config.csvPrefix,
      fsync: config.csvFsync,
      lockTimeoutMs: config.lockTimeoutMs,
      logger: new Logger(CsvCommitter.name),
    });
  }

  commit(rows: PendingBytes, quarantine: PendingBytes): Promise<CommitResult> {
    return this.committer.commit(rows, quarantine);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.committer.close();
  }
}
