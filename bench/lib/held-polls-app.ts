/**
 * The app under test for bench/held-polls.ts, in a process of its own: a NestJS app with
 * PollingModule (in-memory index) and one @LongPoll route, GET /runs/:run/changes, listening on
 * 127.0.0.1 with a backlog of 4096. Answers the bench over IPC: `stats` (HeldRequests.size),
 * `counters` (handler and aggregator runs, when the last change notice arrived), `disconnect`
 * (close every connection), `memory`, `lagReset` / `lagReport` (held-polls-probes.ts), `exit`.
 *
 * argv[2]: the database URL (the `items` table exists; installSchema tracks it); argv[3]: `fastify`
 * runs it on @nestjs/platform-fastify (default Express).
 */
import 'reflect-metadata';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Controller, Get, Inject, type INestApplication, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import type { FastifyInstance } from 'fastify';
import { Pool } from 'pg';
import {
  ChangeReader,
  installJsonHttpErrors,
  LongPoll,
  PollContext,
  PollingModule,
} from '../../src';
import { ChangeBus } from '../../src/change-bus/change-bus.service';
import { HeldRequests } from '../../src/http-polling/held-requests.service';
import { ResponseAggregator } from '../../src/aggregation/response-aggregator.service';
import { clock, serve } from './child';
import { probes, trackConnections } from './held-polls-probes';

export const BACKLOG = 4096;
/** Longest hold the app allows (the bench asks for 60–90 s: nothing may time out). */
const MAX_WAIT_S = 300;
/** Above the 19,000 the issue asks for: the limits must not be what stops the bench. */
export const HELD_LIMIT = 25_000;

/** Handler runs of the bench route (the aggregator should make it one per change). */
class Counters {
  handlerRuns = 0;
  /** When the last handler run started (epoch ms). */
  lastHandlerAt = 0;
}

interface ItemRow {
  id: string;
  run: number;
  body: string | null;
}

@Controller('runs/:run')
class BenchFeedController {
  constructor(
    @Inject(Counters) private readonly counters: Counters,
    @Inject(Pool) private readonly pool: Pool,
  ) {}

  /** What a real route does: one query for the changed rows, `{changes, cursor}` back. */
  @Get('changes')
  @LongPoll({ feed: 'items', partition: 'run' })
  async changes(@PollContext() poll: PollContext) {
    this.counters.handlerRuns++;
    this.counters.lastHandlerAt = clock();
    const rows = poll.changedIds.length
      ? (
          await this.pool.query<ItemRow>(
            'SELECT id::text AS id, run, body FROM items WHERE id = ANY($1::bigint[])',
            [poll.changedIds],
          )
        ).rows
      : [];
    const byId = new Map(rows.map((row) => [row.id, row]));
    return {
      changes: poll.changedIds.map((id) =>
        byId.has(id) ? { id, op: 'upsert', row: byId.get(id) } : { id, op: 'delete' },
      ),
      cursor: poll.cursor,
    };
  }
}

async function main(databaseUrl: string, platform: string | undefined): Promise<void> {
  const pool = new Pool({ connectionString: databaseUrl, max: 2 });
  await pool.query('SELECT 1'); // a warm connection, as in a running app
  @Module({
    imports: [
      PollingModule.forRoot({
        postgres: { url: databaseUrl },
        tables: [{ table: 'items', partition: 'run' }],
        installSchema: true,
        // The bench's callers are one user: the app names the scope (its bearer token).
        aggregator: { scope: (req) => req.headers.authorization || null },
        http: { maxHeld: HELD_LIMIT, maxHeldPerClient: HELD_LIMIT, maxWaitS: MAX_WAIT_S },
      }),
    ],
    controllers: [BenchFeedController],
    providers: [Counters, { provide: Pool, useValue: pool }],
  })
  class BenchAppModule {}

  const options = { logger: ['error', 'warn'] as ('error' | 'warn')[] };
  const app: INestApplication =
    platform === 'fastify'
      ? await NestFactory.create(BenchAppModule, new FastifyAdapter(), options)
      : await NestFactory.create(BenchAppModule, options);
  await app.init();
  // Fastify serves its routes once ready; the bench listens on its server itself (backlog).
  if (platform === 'fastify') await (app.getHttpAdapter().getInstance() as FastifyInstance).ready();
  installJsonHttpErrors(app);
  const server = app.getHttpServer() as Server;
  const connections = trackConnections(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: 0, host: '127.0.0.1', backlog: BACKLOG }, () => resolve());
  });
  await app.get(ChangeReader).whenLive();
  const held = app.get(HeldRequests);
  const aggregator = app.get(ResponseAggregator);
  const counters = app.get(Counters);
  let lastNoticeAt = 0;
  app.get(ChangeBus).notices$.subscribe((notice) => {
    if (notice.kind !== 'wake-all') lastNoticeAt = clock();
  });
  const { ready } = serve(
    {
      ...probes,
      disconnect: connections.disconnect,
      stats: () => ({
        held: held.size,
        feeds: held.feedCount,
        connections: connections.count(),
      }),
      counters: () => ({
        handlerRuns: counters.handlerRuns,
        lastHandlerAt: counters.lastHandlerAt,
        lastNoticeAt,
        aggregatorRuns: aggregator.runs,
        aggregatorJoined: aggregator.joined,
      }),
    },
    async () => {
      await app.close();
      await pool.end();
    },
  );
  ready({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, pid: process.pid });
}

main(process.argv[2], process.argv[3]).catch((error) => {
  console.error(error);
  process.exit(1);
});
