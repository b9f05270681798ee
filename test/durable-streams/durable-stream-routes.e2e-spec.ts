import { All, Controller, Sse } from '@nestjs/common';
import { DurableStream, type DurableStreamOptions } from '../../src';
import { createItemsTable, startFailure } from '../support/polling-app';
import { createTestDatabase, type TestDatabase } from '../support/test-database';

describe('@DurableStream route checks at start-up', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
  });

  afterAll(async () => {
    await db?.drop();
  });

  it.each<[string, DurableStreamOptions, boolean, RegExp]>([
    ['on an @Sse route', { feed: 'items', partition: 'run' }, true, /not @Sse/],
    ['of an unknown feed', { feed: 'nope', partition: 'run' }, false, /not a tracked table's feed/],
    ['without a partition', { feed: 'items' }, false, /partitioned by run/],
    ['with longPollS -1', { feed: 'items', partition: 'run', longPollS: -1 }, false, /longPollS/],
    ['with sseCloseS NaN', { feed: 'items', partition: 'run', sseCloseS: NaN }, false, /sseCloseS/],
    ['with keepAliveS 0', { feed: 'items', partition: 'run', keepAliveS: 0 }, false, /keepAliveS/],
  ])('fails the start for a @DurableStream route %s', async (_case, options, sse, message) => {
    @Controller()
    class BadController {
      @(sse ? Sse('runs/:run') : All('runs/:run'))
      @DurableStream(options)
      rows() {
        return [];
      }
    }
    expect(String(await startFailure(db, [BadController]))).toMatch(message);
  });
});
