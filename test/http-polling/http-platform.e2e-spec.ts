import { Controller, Get, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { LongPoll, PollContext, PollingConfigError, PollingModule } from '../../src';
import { startItemsFixture, type ItemsFixture } from '../fixtures/items-app';
import { testPlatform } from '../support/http-platform';
import { createItemsTable, itemsOptions } from '../support/polling-app';
import { createTestDatabase, type TestDatabase } from '../support/test-database';

/** An HTTP adapter of another platform (Koa, a homegrown one): Nest asks it its type. */
class KoaStyleAdapter extends ExpressAdapter {
  getType(): string {
    return 'koa';
  }
}

@Controller('runs')
class FeedController {
  @Get(':run/changes')
  @LongPoll({ feed: 'items', partition: 'run' })
  changes(@PollContext() poll: PollContext) {
    return { ids: poll.changedIds };
  }
}

describe('HTTP platforms', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
  });

  afterAll(async () => {
    await db?.drop();
  });

  it(`runs the suite's apps on ${testPlatform()}`, async () => {
    let fixture: ItemsFixture | undefined;
    try {
      fixture = await startItemsFixture();
      expect(fixture.items.app.getHttpAdapter().getType()).toBe(testPlatform());
      const res = await fetch(`${fixture.items.url}/runs/1/changes`);
      expect(res.status).toBe(200);
      expect(res.headers.get('poll-cursor')).toBeTruthy();
      await res.arrayBuffer();
    } finally {
      await fixture?.close();
    }
  });

  it('fails the start with a clear message on a platform that is neither Express nor Fastify', async () => {
    @Module({
      imports: [PollingModule.forRoot(itemsOptions(db))],
      controllers: [FeedController],
    })
    class KoaAppModule {}
    const app = await NestFactory.create(KoaAppModule, new KoaStyleAdapter(), {
      logger: false,
      abortOnError: false,
    });
    try {
      const error = await app.init().then(
        () => null,
        (reason: unknown) => reason,
      );
      expect(error).toBeInstanceOf(PollingConfigError);
      expect(String(error)).toMatch(/"koa" is not supported/);
      expect(String(error)).toMatch(/@nestjs\/platform-express/);
      expect(String(error)).toMatch(/@nestjs\/platform-fastify/);
    } finally {
      await app.close().catch(() => undefined);
    }
  });
});
