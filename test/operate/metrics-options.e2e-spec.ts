import {
  Controller,
  Get,
  Module,
  Post,
  type INestApplication,
  type LoggerService,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Client } from 'pg';
import { Registry } from 'prom-client';
import {
  BatchPoll,
  ChangeReader,
  createMetricsController,
  LongPoll,
  PollContext,
  PollingHealthIndicator,
  PollingMetrics,
  PollingModule,
  type PollingModuleOptions,
} from '../../src';
import IORedis from 'ioredis';
import { createItemsTable, itemsOptions, startPollingApp } from '../support/polling-app';
import { deleteKeys, redisUrl, uniquePrefix } from '../support/redis-test';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { waitFor } from '../support/wait-for';
import { parsePrometheusText, scrape } from '../support/prometheus-text';

@Controller('runs/:run')
class OpsFeedController {
  @Get('changes')
  @LongPoll({ feed: 'items', partition: 'run' })
  changes(@PollContext() poll: PollContext) {
    return { ids: poll.changedIds, cursor: poll.cursor };
  }
}

@Controller()
class OpsBatchController {
  @Post('poll')
  @BatchPoll()
  poll() {}
}

/** Every line the app logs, with its level. */
class CapturingLogger implements LoggerService {
  readonly lines: { level: string; message: string }[] = [];
  private add(level: string, message: unknown) {
    this.lines.push({ level, message: String(message) });
  }
  log(message: unknown) {
    this.add('log', message);
  }
  warn(message: unknown) {
    this.add('warn', message);
  }
  error(message: unknown) {
    this.add('error', message);
  }
  debug(message: unknown) {
    this.add('debug', message);
  }
  verbose(message: unknown) {
    this.add('verbose', message);
  }
}

interface OpsApp {
  app: INestApplication;
  url: string;
  close(): Promise<void>;
}

describe('metrics options on an app of its own (PollingModule.forRoot)', () => {
  let db: TestDatabase;
  let psql: Client;
  let running: OpsApp | undefined;

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    psql = new Client(db.config);
    await psql.connect();
  });

  afterEach(async () => {
    await running?.close();
    running = undefined;
  });

  afterAll(async () => {
    await psql?.end();
    await db?.drop();
  });

  async function start(
    options: Partial<PollingModuleOptions>,
    logger: LoggerService | false = false,
  ): Promise<OpsApp> {
    @Module({
      imports: [PollingModule.forRoot(itemsOptions(db, options))],
      controllers: [OpsFeedController, OpsBatchController],
    })
    class OpsAppModule {}
    const app = await NestFactory.create(OpsAppModule, { logger: logger || ['error'] });
    app.enableShutdownHooks();
    await app.listen(0, '127.0.0.1');
    await app.get(ChangeReader).whenLive();
    const { port } = app.getHttpServer().address() as { port: number };
    running = {
      app,
      url: `http://127.0.0.1:${port}`,
      close: async () => {
        app.getHttpServer().closeAllConnections();
        await app.close();
      },
    };
    return running;
  }

  async function head(app: OpsApp, run: number): Promise<string> {
    const res = await fetch(`${app.url}/runs/${run}/changes`);
    expect(res.status).toBe(200);
    await res.json();
    return res.headers.get('poll-cursor')!;
  }

  it('are off by default: no route, no prom-client work, polls unchanged', async () => {
    const app = await start({});
    expect((await fetch(`${app.url}/metrics`)).status).toBe(404);
    const metrics = app.app.get(PollingMetrics);
    expect(metrics.enabled).toBe(false);
    expect(metrics.registry).toBeNull();
    const since = await head(app, 1);
    const res = await fetch(`${app.url}/runs/1/changes?since=${since}&wait=0.2`);
    expect(res.status).toBe(204);
  });

  it('forRoot mounts the route at metrics.path, with the given prefix and registry', async () => {
    const registry = new Registry();
    const app = await start({
      metrics: { enabled: true, path: '/ops/metrics', prefix: 'ops_', registry },
      http: { minPollIntervalMs: 60_000, clientKey: (req) => String(req.headers['x-client']) },
    });
    expect((await fetch(`${app.url}/metrics`)).status).toBe(404);
    const since = await head(app, 2);
    const before = await scrape(`${app.url}/ops/metrics`);
    expect(before.value('ops_held_requests', { feed: 'items' })).toBe(0);
    expect(before.has('polling_held_requests')).toBe(false);
    expect(parsePrometheusText(await registry.metrics()).has('ops_reader_leader')).toBe(true);

    // The minimum poll interval: the second poll of one client within it is a 429.
    const client = { 'x-client': 'c1' };
    const first = await fetch(`${app.url}/runs/2/changes?since=${since}&wait=0`, {
      headers: client,
    });
    expect(first.status).toBe(200);
    const second = await fetch(`${app.url}/runs/2/changes?since=${since}&wait=0`, {
      headers: client,
    });
    expect(second.status).toBe(429);

    // A batch poll is counted as one request under "(batch)", not as its per-feed loopback GETs.
    const batch = await fetch(`${app.url}/poll`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-client': 'c2' },
      body: JSON.stringify({ feeds: { '/runs/2/changes': since }, wait: 0.5 }),
    });
    expect(batch.status).toBe(204);

    const after = await scrape(`${app.url}/ops/metrics`);
    const delta = (name: string, labels?: Record<string, string>) =>
      after.value(name, labels) - before.value(name, labels);
    expect(delta('ops_rejected_total', { reason: 'poll_interval', status: '429' })).toBe(1);
    expect(delta('ops_wakeups_total', { feed: '(batch)', reason: 'timeout' })).toBe(1);
    expect(delta('ops_responses_total', { kind: 'batch', status: '204' })).toBe(1);
    expect(delta('ops_responses_total', { feed: 'items', kind: 'short' })).toBe(2); // 200 + 429
    expect(delta('ops_responses_total', { status: '304' })).toBe(0);
  });

  it('counts the shutdown wake-up of a held poll (read from the registry after close)', async () => {
    const registry = new Registry();
    const app = await start({ metrics: { enabled: true, registry } });
    const since = await head(app, 3);
    const poll = fetch(`${app.url}/runs/3/changes?since=${since}&wait=20`);
    await waitFor(
      async () => (await scrape(`${app.url}/metrics`)).value('polling_held_requests') === 1,
      { message: 'the poll is held' },
    );
    const closing = app.app.close();
    const res = await poll;
    expect(res.status).toBe(204);
    expect(res.headers.get('poll-wake')).toBe('shutdown');
    await closing;
    running = undefined;
    const text = await registry.metrics();
    expect(parsePrometheusText(text).value('polling_wakeups_total', { reason: 'shutdown' })).toBe(
      1,
    );
  });

  it('logs no line per held request at info level (or above)', async () => {
    const logger = new CapturingLogger();
    const app = await start(
      { metrics: { enabled: true }, http: { maxHeldPerClient: 100 } },
      logger,
    );
    const since = await head(app, 4);
    const mark = logger.lines.length;

    const polls = Array.from({ length: 30 }, (_, i) =>
      fetch(`${app.url}/runs/4/changes?since=${since}&wait=${i % 2 ? 20 : 1}`),
    );
    await waitFor(
      async () => (await scrape(`${app.url}/metrics`)).value('polling_held_requests') === 30,
      { message: '30 polls held' },
    );
    await psql.query("INSERT INTO items (run, body) VALUES (4, 'wake')");
    const statuses = (await Promise.all(polls)).map((r) => r.status);
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(15);
    const bad = await fetch(`${app.url}/runs/4/changes?since=garbage`);
    expect(bad.status).toBe(400);

    const loud = logger.lines
      .slice(mark)
      .filter((l) => l.level === 'log' || l.level === 'warn' || l.level === 'error');
    expect(loud).toEqual([]);
  });
});

describe('metrics.enabled with PollingModule.forRootAsync', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
  });

  afterAll(() => db?.drop());

  async function startAsync(metrics: PollingModuleOptions['metrics'], mount: boolean) {
    @Module({
      imports: [
        PollingModule.forRootAsync({ useFactory: async () => itemsOptions(db, { metrics }) }),
      ],
      controllers: mount ? [createMetricsController('metrics')] : [],
    })
    class AsyncOpsModule {}
    const app = await NestFactory.create(AsyncOpsModule, { logger: false, abortOnError: false });
    try {
      await app.listen(0, '127.0.0.1');
    } catch (error) {
      await app.close().catch(() => undefined);
      throw error;
    }
    return app;
  }

  it('a metrics.path it cannot mount fails start-up saying what to do, instead of a silent 404', async () => {
    await expect(startAsync({ enabled: true }, false)).rejects.toThrow(
      /forRootAsync cannot mount the metrics route.*path: false.*createMetricsController/s,
    );
  });

  it('path: false with createMetricsController serves the metrics', async () => {
    const app = await startAsync({ enabled: true, path: false }, true);
    try {
      const { port } = app.getHttpServer().address() as { port: number };
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('polling_held_requests');
    } finally {
      app.getHttpServer().closeAllConnections();
      await app.close();
    }
  });
});

describe('PollingHealthIndicator with Redis', () => {
  let db: TestDatabase;
  const prefix = uniquePrefix('operate-health');

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
  });

  afterAll(async () => {
    const redis = new IORedis(redisUrl());
    await deleteKeys(redis, prefix).finally(() => redis.quit());
    await db?.drop();
  });

  it('PINGs Redis through the module client and queries Postgres; a wrong database is down', async () => {
    const polling = await startPollingApp(
      itemsOptions(db, { redis: { url: redisUrl() }, keyPrefix: prefix }),
    );
    try {
      const health = polling.app.get(PollingHealthIndicator);
      expect(await health.redis('redis')).toEqual({
        redis: expect.objectContaining({ status: 'up', configured: true }),
      });
      expect(await health.all()).toEqual({
        reader: expect.objectContaining({ status: 'up', role: 'leader', live: true }),
        redis: expect.objectContaining({ status: 'up' }),
        postgres: expect.objectContaining({ status: 'up' }),
      });
      const elsewhere = new PollingHealthIndicator(
        polling.reader,
        {
          postgres: { url: `${db.url}_missing` },
          health: { horizonStallMs: 1000, timeoutMs: 2000 },
        } as never,
        null,
      );
      expect(await elsewhere.postgres('db')).toEqual({
        db: expect.objectContaining({ status: 'down', message: expect.stringMatching(/exist/) }),
      });
    } finally {
      await polling.close();
    }
  });
});

describe('without the optional peers (prom-client, @nestjs/swagger, @nestjs/terminus)', () => {
  const missing = (name: string) => () => {
    const error = new Error(`Cannot find module '${name}'`) as Error & { code: string };
    error.code = 'MODULE_NOT_FOUND';
    throw error;
  };

  it('the library loads, decorators skip OpenAPI, health works, and enabling metrics says what is missing', () => {
    jest.isolateModules(() => {
      jest.doMock('prom-client', missing('prom-client'));
      jest.doMock('@nestjs/swagger', missing('@nestjs/swagger'));
      jest.doMock('@nestjs/terminus', missing('@nestjs/terminus'));
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const lib = require('../../src') as typeof import('../../src');

      class Feed {
        changes() {}
      }
      const descriptor = Object.getOwnPropertyDescriptor(Feed.prototype, 'changes')!;
      lib.LongPoll({ feed: 'items' })(Feed.prototype, 'changes', descriptor);
      expect(Reflect.getMetadataKeys(Feed.prototype.changes)).not.toContain(
        'swagger/apiParameters',
      );
      expect(Reflect.getMetadataKeys(Feed.prototype.changes)).not.toContain('swagger/apiResponse');

      const options = { metrics: { enabled: true, prefix: 'x_', delayBuckets: [1] } };
      const stub = {} as never;
      expect(() => new lib.PollingMetrics(options as never, stub, stub, stub, stub, stub)).toThrow(
        /prom-client/,
      );

      const reader = {
        role: 'leader',
        live: true,
        lag: { heldBackRows: 0, oldestOpenTransactionMs: 0, stalledSince: null },
      };
      const health = new lib.PollingHealthIndicator(
        reader as never,
        { health: { horizonStallMs: 1000, timeoutMs: 1000 } } as never,
        null,
      );
      expect(health.reader('reader')).toEqual({
        reader: expect.objectContaining({ status: 'up', role: 'leader', state: 'ok' }),
      });
    });
  });
});
