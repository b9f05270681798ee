import { Controller, Get } from '@nestjs/common';
import { HealthCheck, HealthCheckService } from '@nestjs/terminus';
import { PollingHealthIndicator } from '../src';
import { Public } from './auth/api-key.guard';

/**
 * Public health (Terminus): the change reader (live, leader or follower, lag; down when changes
 * have been held back behind an open transaction longer than HEALTH_HORIZON_STALL_MS), Redis
 * (PING, when REDIS_URL is set) and Postgres (SELECT 1). 200 when all are up, else 503.
 */
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly polling: PollingHealthIndicator,
  ) {}

  @Get()
  @Public()
  @HealthCheck()
  check() {
    return this.health.check([
      () => this.polling.reader('reader'),
      () => this.polling.redis('redis'),
      () => this.polling.postgres('postgres'),
    ]);
  }
}
