import { startExampleApp, type ExampleApp } from '../../example/example-app';
import { TcpProxy } from '../support/tcp-proxy';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { waitFor } from '../support/wait-for';

/*
 * The example app while its database is down (a restart, a failover, a network cut): every route
 * that needs the database answers 503 with Retry-After, which the client SDK waits out, never
 * Nest's 500 "Internal server error"; once the database is back the same routes answer again.
 * The app reaches PostgreSQL through a loopback proxy that cuts every connection and refuses new
 * ones, as a server that went away does.
 */

const AUTH = { authorization: 'Bearer key-1' };

let db: TestDatabase;
let proxy: TcpProxy;
let example: ExampleApp | null = null;

beforeAll(async () => {
  db = await createTestDatabase();
  const target = new URL(db.url);
  proxy = await TcpProxy.start(Number(target.port || 5432), target.hostname);
  target.port = String(proxy.port);
  example = await startExampleApp(
    {
      DATABASE_URL: target.toString(),
      MIGRATE_ON_START: '1',
      PORT: '0',
      HOST: '127.0.0.1',
      HTTP_PLATFORM: process.env.TEST_HTTP_PLATFORM ?? 'express',
    },
    { logger: false },
  );
});

afterAll(async () => {
  proxy?.refuse(false);
  await example?.close();
  await proxy?.close();
  await db?.drop();
});

async function call(method: string, path: string, body?: unknown) {
  const res = await fetch(`${example!.url}${path}`, {
    method,
    headers: { ...AUTH, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return {
    status: res.status,
    retryAfter: res.headers.get('retry-after'),
    body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
  };
}

it('answers 503 with Retry-After while the database is down, and serves again once it is back', async () => {
  expect((await call('GET', '/channels/outage/messages')).status).toBe(200);
  const created = await call('POST', '/channels/outage/messages', { body: 'before' });
  expect(created.status).toBe(201);

  proxy.refuse(true);
  // Another channel's page: the aggregator may serve an identical request again from its answer.
  for (const [method, path, body] of [
    ['GET', '/channels/elsewhere/messages', undefined],
    ['POST', '/channels/outage/messages', { body: 'during' }],
    ['GET', `/tasks/${'1'}`, undefined],
  ] as const) {
    const answer = await call(method, path, body);
    expect({ method, path, ...answer }).toMatchObject({
      method,
      path,
      status: 503,
      retryAfter: '2',
      body: { statusCode: 503, message: expect.stringMatching(/database is unavailable/) },
    });
  }

  proxy.refuse(false);
  await waitFor(async () => (await call('GET', '/channels/outage/messages')).status === 200, {
    timeoutMs: 15_000,
    message: 'the page route serves again once the database is back',
  });
  expect((await call('POST', '/channels/outage/messages', { body: 'after' })).status).toBe(201);
}, 60_000);

it('still answers an unrelated error as before (a missing task is 404, bad input 400)', async () => {
  expect((await call('GET', '/tasks/999999')).status).toBe(404);
  expect((await call('POST', '/channels/outage/messages', { nope: 1 })).status).toBe(400);
});
