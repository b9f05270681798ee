import { DurableStreamTestServer } from '@durable-streams/server';
import { runConformanceTests } from '@durable-streams/server-conformance-tests';
import { afterAll, beforeAll, describe } from 'vitest';
import { LONG_POLL_TIMEOUT_MS } from './conformance-options';

/**
 * The reference server (`DurableStreamTestServer`) with the same options as ours: a test that
 * fails here too is the suite's or the reference's, not ours (docs/durable-streams.md).
 */
describe('reference server', () => {
  let server: DurableStreamTestServer;
  // runConformanceTests reads baseUrl when each test runs: set once the server listens.
  const config = { baseUrl: '', longPollTimeoutMs: LONG_POLL_TIMEOUT_MS };

  beforeAll(async () => {
    server = new DurableStreamTestServer({ port: 0, longPollTimeout: LONG_POLL_TIMEOUT_MS });
    await server.start();
    config.baseUrl = server.url;
  });

  afterAll(async () => {
    await server?.stop();
  });

  runConformanceTests(config);
});
