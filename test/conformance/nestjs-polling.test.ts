import { runConformanceTests } from '@durable-streams/server-conformance-tests';
import { afterAll, beforeAll, describe } from 'vitest';
import { ensureExampleBuilt, ExampleProcess } from '../faults/support/example-process';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { LONG_POLL_TIMEOUT_MS } from './conformance-options';

/**
 * The built example app (dist-example) as its own process, with the test write shim on
 * (DURABLE_STREAMS_TEST_WRITES=1: PUT creates a scratch stream, POST inserts rows), so what the
 * suite appends is read back through trigger → change reader → index → hold core.
 */
describe('nestjs-polling', () => {
  let db: TestDatabase;
  let app: ExampleProcess;
  const config = { baseUrl: '', longPollTimeoutMs: LONG_POLL_TIMEOUT_MS };

  beforeAll(async () => {
    ensureExampleBuilt();
    db = await createTestDatabase();
    app = await ExampleProcess.start('conformance', {
      DATABASE_URL: db.url,
      MIGRATE_ON_START: '1',
      DURABLE_STREAMS_TEST_WRITES: '1',
      // A long-poll read waits POLL_MAX_WAIT_S (the default wait is capped by it).
      POLL_MAX_WAIT_S: String(LONG_POLL_TIMEOUT_MS / 1000),
    });
    config.baseUrl = app.url;
  });

  afterAll(async () => {
    await app?.stop();
    await db?.drop();
  });

  runConformanceTests(config);
});
