import { Inject, Injectable } from '@nestjs/common';
import { DiskHealthIndicator, HealthIndicatorService } from '@nestjs/terminus';
import { closeSync, constants, openSync, unlinkSync, writeSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { join } from 'node:path';
import type { IngestConfig } from '../config.js';
import { INGEST_CONFIG } from '../tokens.js';

/** Readiness of the CSV folder: writable, and enough free space (SPEC §3). */
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
}
