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

  /** Readiness: CSV folder writable, free disk above the threshold, not shutting down. */
  @Get()
  @HealthCheck()
  readiness() {
    return this.health.check([
      () => {
        const check = this.indicators.check('shutdown');
        return this.drain.draining ? check.down({ message: 'draining' }) : check.up();
      },
      () => this.csv.writable(),
      () => this.csv.diskSpace(),
    ]);
  }

  /** Liveness: the process answers; nothing external is checked. */
  @Get('live')
  @HealthCheck()
  liveness() {
    return this.health.check([]);
  }
}
