import { Inject, Injectable } from '@nestjs/common';
import { DiskHealthIndicator, HealthIndicatorService } from '@nestjs/terminus';
import { closeSync, constants, openSync, unlinkSync, writeSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { join } from 'node:path';
import type { IngestConfig } from '../config/config.js';
import { INGEST_CONFIG } from '../config/tokens.js';
import { lockFilePath, readCommitRecordFile } from './commit-record.js';

/**
 * Readiness of the CSV folder: writable, enough free space (SPEC §3), and a commit record that
 * the committer can read.
 */
@Injectable()
export class CsvHealthIndicator {
  constructor(
    @Inject(INGEST_CONFIG) private readonly config: IngestConfig,
    private readonly health: HealthIndicatorService,
    private readonly disk: DiskHealthIndicator,
  ) {}

  /** Creates, writes and removes a probe file: `access(W_OK)` alone misses a full disk. */
  writable() {
    const check = this.health.check('csv_dir');
    const probe = join(this.config.csvDir, `.health-${process.pid}.probe`);
    try {
      const fd = openSync(probe, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600);
      try {
        writeSync(fd, 'ok');
      } finally {
        closeSync(fd);
        unlinkSync(probe);
      }
      return check.up({ path: this.config.csvDir });
    } catch (err) {
      return check.down({ path: this.config.csvDir, message: (err as Error).message });
    }
  }

  /**
   * Free space above HEALTH_MIN_FREE_BYTES. Terminus' DiskHealthIndicator takes a limit on *used*
   * bytes, so the limit is the file system's size minus the free space wanted.
   */
  async diskSpace() {
    let total: number;
    try {
      const s = await statfs(this.config.csvDir);
      total = s.blocks * s.bsize;
    } catch (err) {
      return this.health.check('disk').down({ message: (err as Error).message });
    }
    return this.disk.checkStorage('disk', {
      path: this.config.csvDir,
      threshold: Math.max(0, total - this.config.healthMinFreeBytes),
    });
  }

  /**
   * The commit record in the lock file is readable: an unreadable one fails every commit until an
   * operator repairs it (csv-committer.ts, "Recovery"), so the worker is not ready. One read of
   * at most RECORD_BYTES, without the lock (the record is written with one pwrite).
   */
  commitRecord() {
    const check = this.health.check('commit_record');
    const paths = this.config.datasets.datasets.map((d) => lockFilePath(this.config.csvDir, d.prefix));
    for (const path of paths) {
      try {
        const record = readCommitRecordFile(path);
        if (record.state === 'unreadable') {
          return check.down({
            path,
            message:
              `the commit record is unreadable (${record.reason}): ${JSON.stringify(record.text)}; ` +
              `ingest is stopped until it is repaired (docs/OPERATIONS.md, Durability)`,
          });
        }
      } catch (err) {
        return check.down({ path, message: (err as Error).message });
      }
    }
    return check.up(paths.length === 1 ? { path: paths[0] } : { paths });
  }
}
