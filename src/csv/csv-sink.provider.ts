import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import type { IngestConfig } from '../config/config.js';
import type { Dataset } from '../datasets/datasets-file.js';
import { csvCell } from '../ingest/core/ndjson-csv.js';
import { INGEST_CONFIG } from '../config/tokens.js';
import { CsvCommitter, type CommitResult } from './csv-committer.js';
import type { PendingBytes } from './pending-bytes.js';

/**
 * The Nest face of the CSV writer: one committer per dataset and worker, each with its own files
 * and lock (a commit to one dataset never waits for another's lock, SPEC §8), holding the append
 * descriptors, closed after the requests in flight have drained (SPEC §6–7).
 */
@Injectable()
export class CsvSinkProvider implements OnApplicationShutdown {
  private readonly committers = new Map<string, CsvCommitter>();

  constructor(@Inject(INGEST_CONFIG) config: IngestConfig) {
    for (const d of config.datasets.datasets) {
      this.committers.set(
        d.name,
        new CsvCommitter({
          dir: config.csvDir,
          prefix: d.prefix,
          node: config.nodeName === '' ? undefined : config.nodeName,
          header: d.header ? headerRow(d) : undefined,
          fsync: config.csvFsync,
          lockTimeoutMs: config.lockTimeoutMs,
          logger: new Logger(`${CsvCommitter.name}:${d.name}`),
        }),
      );
    }
  }

  commit(dataset: Dataset, rows: PendingBytes, quarantine: PendingBytes): Promise<CommitResult> {
    return this.committers.get(dataset.name)!.commit(rows, quarantine);
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.all([...this.committers.values()].map((c) => c.close()));
  }
}

/** The column names, quoted per §5 when needed, ended by the dataset's eol (SPEC §8). */
export function headerRow(d: Dataset): Buffer {
  return Buffer.from(d.columnNames.map(csvCell).join(',') + (d.eol === 'lf' ? '\n' : '\r\n'));
}
