/**
 * The app under test for bench/http-rates.ts, run as its own process:
 *
 *   env DATABASE_URL=... [REDIS_URL=... KEY_PREFIX=...] [AGGREGATOR=0] [HTTP_PLATFORM=fastify]
 *
 * One Nest app with a plain hello route (the baseline), a route whose interceptor answers 304 at
 * once (a reference), an items feed as @LongPoll and @Poll routes, and /_bench/counts for the bench to read what the app did. Ready with `{port}` once
 * it serves (child.ts).
 */
import 'reflect-metadata';
import {
  type CallHandler,
  Controller,
  type ExecutionContext,
  Get,
  Inject,
  Injectable,
  Module,
  type NestInterceptor,
  UseInterceptors,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Client } from 'pg';
import { of } from 'rxjs';
import { Column, DataSource, Entity, PrimaryGeneratedColumn, type Logger } from 'typeorm';
import {
  ChangeReader,
  LongPoll,
  Poll,
  PollContext,
  PollingModule,
  loadFeedChanges,
} from '../../src';
import { HeldRequests } from '../../src/http-polling/held-requests.service';
import { ResponseAggregator } from '../../src/aggregation/response-aggregator.service';
import { serve } from './child';

/**
 * Every statement any `pg` client of this process sends: the app's DataSource pool and the polling
 * module's own connections (reader, LISTEN, setup) alike. Patched before any client exists.
 */
const statements = { total: 0 };
const clientProto = Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
const originalQuery = clientProto.query;
clientProto.query = function countedQuery(this: unknown, ...args: unknown[]) {
  statements.total++;
  return originalQuery.apply(this, args);
};

/** Statements of the app's own DataSource, through its TypeORM logger (like the fixture's). */
class QueryCounter implements Logger {
  count = 0;
  logQuery(): void {
    this.count++;
  }
  logQueryError(): void {}
  logQuerySlow(): void {}
  logSchemaBuild(): void {}
  logMigration(): void {}
  log(): void {}
}

@Entity('items')
class Item {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id!: string;

  @Column({ type: 'int', default: 0 })
  run!: number;

  @Column({ type: 'text', nullable: true })
  body!: string | null;
}

const handlerRuns = { count: 0 };
const queries = new QueryCounter();

/** The baseline: the smallest Nest route there is, in the same app and pipeline. */
@Controller()
class HelloController {
  @Get('hello')
  hello(): string {
    return 'Hello World!';
  }
}

/**
 * Answers 304 at once, without running the handler: the least any interceptor-made 304 costs in
 * Nest (the interceptor pipeline, no protocol work). A reference for the polling 304 path, which
 * does the same plus reading the cursor, the index head and setting its headers.
 */
@Injectable()
class Bare304Interceptor implements NestInterceptor {
  intercept(context: ExecutionContext, _next: CallHandler) {
    // Express's response and Fastify's reply both have status().
    context.switchToHttp().getResponse<{ status(code: number): unknown }>().status(304);
    return of(undefined);
  }
}

@Controller()
class Bare304Controller {
  @Get('bare-304')
  @UseInterceptors(Bare304Interceptor)
  never(): string {
    return 'never sent';
  }
}

@Controller('runs/:run')
class ItemsFeedController {
  constructor(@Inject(DataSource) private readonly dataSource: DataSource) {}

  @Get('changes')
  @LongPoll({ feed: 'items', partition: 'run' })
  async changes(@PollContext() poll: PollContext) {
    handlerRuns.count++;
    const changes = await loadFeedChanges(this.dataSource.getRepository(Item), poll.changedIds);
    return { changes, cursor: poll.cursor };
  }

  @Get('poll')
  @Poll({ feed: 'items', partition: 'run' })
  async poll(@PollContext() poll: PollContext) {
    handlerRuns.count++;
    const changes = await loadFeedChanges(this.dataSource.getRepository(Item), poll.changedIds);
    return { changes, cursor: poll.cursor };
  }
}

@Controller('_bench')
class BenchCountsController {
  constructor(
    private readonly held: HeldRequests,
    private readonly aggregator: ResponseAggregator,
  ) {}

  /** What the app has done so far; reading it sends no SQL. */
  @Get('counts')
  counts() {
    return {
      dataSourceQueries: queries.count,
      pgStatements: statements.total,
      handlerRuns: handlerRuns.count,
      held: this.held.size,
      aggregatorRuns: this.aggregator.runs,
      aggregatorJoined: this.aggregator.joined,
      cpuUs: process.cpuUsage(),
      rss: process.memoryUsage().rss,
    };
  }
}

async function main(): Promise<void> {
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) throw new Error('DATABASE_URL is required');
  const redisUrl = process.env.REDIS_URL;

  @Module({
    imports: [
      PollingModule.forRoot({
        postgres: { url: databaseUrl },
        ...(redisUrl ? { redis: { url: redisUrl }, keyPrefix: process.env.KEY_PREFIX } : {}),
        tables: [{ table: 'items', partition: 'run' }],
        installSchema: true,
        http: { maxHeldPerClient: 100_000 },
        aggregator: {
          enabled: process.env.AGGREGATOR !== '0',
          // Callers with one bearer token are one user here: the app names the scope.
          scope: (req) => req.headers.authorization || null,
        },
      }),
    ],
    controllers: [HelloController, Bare304Controller, ItemsFeedController, BenchCountsController],
    providers: [
      {
        provide: DataSource,
        useFactory: () =>
          new DataSource({
            type: 'postgres',
            url: databaseUrl,
            entities: [Item],
            logging: ['query'],
            logger: queries,
          }).initialize(),
      },
    ],
  })
  class RatesAppModule {}

  // No enableShutdownHooks(): `close` below closes the app (app.close() runs the module's shutdown
  // hooks too), so the two would not race.
  // HTTP_PLATFORM=fastify: the same app on @nestjs/platform-fastify (default Express).
  const app =
    process.env.HTTP_PLATFORM === 'fastify'
      ? await NestFactory.create(RatesAppModule, new FastifyAdapter(), { logger: ['error'] })
      : await NestFactory.create(RatesAppModule, { logger: ['error'] });
  await app.listen(0, '127.0.0.1');
  await app.get(ChangeReader).whenLive();
  const dataSource = app.get(DataSource);

  const { ready } = serve({}, async () => {
    app.getHttpServer().closeAllConnections();
    await app.close();
    await dataSource.destroy();
  });
  const { port } = app.getHttpServer().address() as { port: number };
  ready({ port });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
