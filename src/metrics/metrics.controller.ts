import { Controller, Get, NotFoundException, Res, type Type } from '@nestjs/common';
import { excludeFromOpenApi } from '../http-polling/poll-openapi';
import { PollingMetrics } from './polling-metrics.service';

interface HeaderSetter {
  header(name: string, value: string): unknown;
}

/**
 * A controller that serves the module's Prometheus metrics at `path` (GET). `PollingModule.forRoot`
 * mounts one when `metrics.enabled` (at `metrics.path`); mount it yourself with `forRootAsync`, or
 * to decorate it: `controllers: [createMetricsController('metrics', UseGuards(MetricsGuard))]`
 * (set `metrics.path: false` then). Answers 404 while metrics are off. App-wide guards, the global
 * prefix and versioning apply as to any controller.
 */
export function createMetricsController(
  path = 'metrics',
  ...decorators: ClassDecorator[]
): Type<unknown> {
  @Controller(path)
  class PollingMetricsController {
    constructor(private readonly metrics: PollingMetrics) {}

    @Get()
    async scrape(@Res({ passthrough: true }) res: HeaderSetter): Promise<string> {
      if (!this.metrics.enabled) throw new NotFoundException('metrics are not enabled');
      const { contentType, body } = await this.metrics.scrape();
      res.header('Content-Type', contentType);
      return body;
    }
  }
  excludeFromOpenApi(PollingMetricsController);
  for (const decorate of decorators) decorate(PollingMetricsController);
  return PollingMetricsController;
}
