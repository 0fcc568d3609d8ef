import { Controller, Get } from '@nestjs/common';
import { HealthCheck, HealthCheckService, HealthIndicatorService } from '@nestjs/terminus';
import { CsvHealthIndicator } from '../csv/csv.health.js';
import { ShutdownDrain } from '../ingest/shutdown-drain.js';

/** The health module only combines indicators; each lives with what it checks. */
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
    private readonly csv: CsvHealthIndicator,
    private readonly drain: ShutdownDrain,
  ) {}

  /**
   * Readiness: CSV folder writable, free disk above the threshold, a readable commit record, not
   * shutting down.
   */
  @Get()
  @HealthCheck()
  readiness() {
    const disk = this.csv.diskSpace();
    return this.health.check([
      () => this.csv.writable(),
      () => disk,
      () => this.csv.commitRecord(),
      // Read last, once the disk check's I/O is done: a check under way when draining starts
      // then names it, instead of terminus answering `shutting_down` with nothing down.
      async () => {
        await disk.catch(() => undefined);
        const check = this.indicators.check('shutdown');
        return this.drain.draining ? check.down({ message: 'draining' }) : check.up();
      },
    ]);
  }

  /** Liveness: the process answers; nothing external is checked. */
  @Get('live')
  @HealthCheck()
  liveness() {
    return this.health.check([]);
  }
}
