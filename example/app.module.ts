import { Module, OnApplicationShutdown, type DynamicModule } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { TerminusModule } from '@nestjs/terminus';
import { DataSource } from 'typeorm';
import { createMetricsController, PollingModule } from '../src';
import { ApiKeyGuard, Public, type AuthedRequest } from './auth/api-key.guard';
import { EXAMPLE_CONFIG, type ExampleConfig } from './config';
import { dataSourceProvider } from './database.provider';
import { HealthController } from './health.controller';
import { MessagesController } from './messages/messages.controller';
import { PollController } from './poll.controller';
import { DurableStreamsController } from './streams/durable-streams.controller';
import { scratchStreams } from './streams/test-writes/scratch-streams';
import { TaskWorker } from './tasks/task-worker.service';
import { TasksController } from './tasks/tasks.controller';

/** Closes the app's DataSource after everything else has stopped. */
class DataSourceCloser implements OnApplicationShutdown {
  constructor(private readonly dataSource: DataSource) {}
  async onApplicationShutdown(): Promise<void> {
    if (this.dataSource.isInitialized) await this.dataSource.destroy();
  }
}

/** The example app: chat channels and background tasks, live over the polling module. */
@Module({})
export class ExampleAppModule {
  static forConfig(config: ExampleConfig): DynamicModule {
    const maxWaitS = config.maxWaitS;
    // Test only (DURABLE_STREAMS_TEST_WRITES=1): writable scratch streams for the conformance suite.
    const scratch = config.durableStreamTestWrites ? scratchStreams() : null;
    return {
      module: ExampleAppModule,
      imports: [
        PollingModule.forRoot({
          postgres: { url: config.readerDatabaseUrl },
          redis: config.redisUrl ? { url: config.redisUrl } : undefined,
          tables: [
            { table: 'messages', partition: 'channel' },
            { table: 'tasks', partition: 'id' },
            ...(scratch ? [scratch.table] : []),
          ],
          http: {
            maxWaitS,
            defaultWaitS: Math.min(25, maxWaitS),
            maxHeldPerClient: config.maxHeldPerClient,
            maxHeld: config.maxHeld,
            minPollIntervalMs: config.minPollIntervalMs,
            clientKey: (req) => (req as AuthedRequest).user?.id ?? req.ip ?? 'anonymous',
            cursorSecret: process.env.CURSOR_SECRET || undefined,
          },
          // The user id is the auth scope: users never share each other's responses.
          aggregator: { scope: (req) => (req as AuthedRequest).user?.id ?? null },
          // Prometheus metrics, served below at /metrics without an API key (path: false: the
          // example mounts the route itself to mark it public).
          metrics: { enabled: true, path: false },
          health: { horizonStallMs: config.healthHorizonStallMs },
        }),
        TerminusModule.forRoot(), // a failed check logs one JSON line (errorLogStyle 'json')
      ],
      controllers: [
        MessagesController,
        TasksController,
        PollController,
        DurableStreamsController,
        HealthController,
        createMetricsController('metrics', Public()),
        ...(scratch ? scratch.controllers : []),
      ],
      providers: [
        { provide: EXAMPLE_CONFIG, useValue: config },
        dataSourceProvider,
        {
          provide: DataSourceCloser,
          useFactory: (ds: DataSource) => new DataSourceCloser(ds),
          inject: [DataSource],
        },
        { provide: APP_GUARD, useClass: ApiKeyGuard },
        TaskWorker,
        ...(scratch ? scratch.providers : []),
      ],
    };
  }
}
