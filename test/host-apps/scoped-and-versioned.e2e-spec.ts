import {
  Inject,
  Injectable,
  Scope,
  VersioningType,
  type CanActivate,
  type ExecutionContext,
} from '@nestjs/common';
import { APP_GUARD, REQUEST } from '@nestjs/core';
import type { PollingRequest as Request } from '../../src';
import { request } from 'node:http';
import { Client } from 'pg';
import { createItemsTable, insertItem } from '../support/polling-app';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { batch, expectStatus, startApp, type Started } from './feed-app';
import {
  AdminHostFeedController,
  PassthroughFeedController,
  RequestUser,
  ScopedBatchController,
  ScopedFeedController,
  TenantFeedController,
  TenantGuard,
  VersionOneController,
  VersionTwoController,
} from './scoped-feeds';

/*
 * Nest features real apps combine with feed routes, inside a batch poll: request-scoped
 * controllers and guards (and a request-scoped APP_GUARD, which makes every controller
 * request-scoped), header and media-type versioning, and a route that sets a cookie through
 * @Res({passthrough: true}). A feed in a batch must answer what its own GET answers.
 */

let db: TestDatabase;
let writer: Client;

beforeAll(async () => {
  db = await createTestDatabase();
  await createItemsTable(db);
  writer = new Client(db.config);
  await writer.connect();
}, 30_000);

afterAll(async () => {
  await writer?.end();
  await db?.drop();
});

const insert = (run: number) => insertItem(writer, run, 'scoped');

describe('batch poll over request-scoped controllers and guards', () => {
  let host: Started;

  beforeAll(async () => {
    host = await startApp(db, {
      controllers: [
        ScopedFeedController,
        TenantFeedController,
        PassthroughFeedController,
        ScopedBatchController,
      ],
      providers: [RequestUser, TenantGuard],
    });
  }, 30_000);

  afterAll(() => host?.close());

  it("runs a request-scoped controller's route with its own request", async () => {
    const get = await fetch(`${host.url}/scoped/11/changes`, { headers: { 'x-user': 'ann' } });
    expect(get.status).toBe(200);
    expect(await get.json()).toMatchObject({ user: 'ann' });

    const start = await batch(host.url, { '/scoped/11/changes': null }, { 'x-user': 'ann' });
    expectStatus(start, 200);
    expect(start.feeds['/scoped/11/changes']).toMatchObject({ status: 200, body: { user: 'ann' } });

    const cursor = start.feeds['/scoped/11/changes'].cursor!;
    const poll = batch(host.url, { '/scoped/11/changes': cursor }, { 'x-user': 'bob' }, 10);
    await new Promise((r) => setTimeout(r, 150));
    const id = await insert(11);
    const answer = await poll;
    expectStatus(answer, 200);
    expect(answer.feeds['/scoped/11/changes'].body).toEqual({ user: 'bob', ids: [id] });
  });

  it('enforces a request-scoped guard of the feed route, as its GET does', async () => {
    const get = await fetch(`${host.url}/tenant/12/changes`);
    expect(get.status).toBe(403);
    const denied = await batch(host.url, { '/tenant/12/changes': null });
    expectStatus(denied, 403);
    const allowed = await batch(host.url, { '/tenant/12/changes': null }, { 'x-tenant': 't1' });
    expectStatus(allowed, 200);
  });

  it('lets a route set a cookie through @Res({passthrough: true})', async () => {
    const get = await fetch(`${host.url}/passthrough/13/changes`);
    expect(get.status).toBe(200);
    expect(get.headers.getSetCookie()).toEqual([
      expect.stringMatching(/^seen=.+; Path=\/; HttpOnly$/),
    ]);
    const answer = await batch(host.url, { '/passthrough/13/changes': null });
    expectStatus(answer, 200);
    expect(answer.cookies).toEqual([expect.stringMatching(/^seen=.+; Path=\/; HttpOnly$/)]);
    expect(answer.feeds['/passthrough/13/changes']).toMatchObject({
      status: 200,
      body: { ids: [] },
    });
  });
});

/**
 * An app-wide guard with a request-scoped dependency (so every controller becomes
 * request-scoped): a blocked client may not read feeds (it may still reach other routes).
 */
@Injectable({ scope: Scope.REQUEST })
class BlockListGuard implements CanActivate {
  constructor(@Inject(REQUEST) private readonly req: Request) {}
  canActivate(context: ExecutionContext): boolean {
    const feedRoute = context.getHandler().name === 'changes';
    return !(feedRoute && this.req.headers['x-blocked'] === 'yes');
  }
}

describe('batch poll under a request-scoped APP_GUARD', () => {
  let host: Started;

  beforeAll(async () => {
    host = await startApp(db, {
      controllers: [TenantFeedController, ScopedBatchController],
      providers: [TenantGuard, { provide: APP_GUARD, useClass: BlockListGuard }],
    });
  }, 30_000);

  afterAll(() => host?.close());

  it('refuses a feed the global guard refuses, and serves it otherwise', async () => {
    const headers = { 'x-tenant': 't1' };
    const get = await fetch(`${host.url}/tenant/14/changes`, {
      headers: { ...headers, 'x-blocked': 'yes' },
    });
    expect(get.status).toBe(403);
    const denied = await batch(
      host.url,
      { '/tenant/14/changes': null },
      {
        ...headers,
        'x-blocked': 'yes',
      },
    );
    expectStatus(denied, 403);
    const allowed = await batch(host.url, { '/tenant/14/changes': null }, headers);
    expectStatus(allowed, 200);
  });
});

describe.each([
  [
    'header versioning',
    { type: VersioningType.HEADER, header: 'X-API-Version', defaultVersion: '1' } as const,
    (v: string) => ({ 'x-api-version': v }),
  ],
  [
    'media-type versioning',
    { type: VersioningType.MEDIA_TYPE, key: 'v=', defaultVersion: '1' } as const,
    (v: string) => ({ accept: `application/json;v=${v}` }),
  ],
])('batch poll with %s', (_name, versioning, versionHeaders) => {
  let host: Started;

  beforeAll(async () => {
    host = await startApp(
      db,
      { controllers: [VersionOneController, VersionTwoController, ScopedBatchController] },
      (app) => app.enableVersioning(versioning),
    );
  }, 30_000);

  afterAll(() => host?.close());

  it.each(['1', '2'])('serves version %s of the feed route the client asks for', async (v) => {
    const get = await fetch(`${host.url}/versioned/15/changes`, { headers: versionHeaders(v) });
    expect(get.status).toBe(200);
    expect(await get.json()).toMatchObject({ version: Number(v) });
    const answer = await batch(host.url, { '/versioned/15/changes': null }, versionHeaders(v));
    expectStatus(answer, 200);
    expect(answer.feeds['/versioned/15/changes'].body).toMatchObject({ version: Number(v) });
  });
});

describe('batch poll with a host-bound controller', () => {
  let host: Started;

  beforeAll(async () => {
    host = await startApp(db, { controllers: [AdminHostFeedController, ScopedBatchController] });
  }, 30_000);

  afterAll(() => host?.close());

  /** A request as if to `hostname` (the app listens on 127.0.0.1). */
  function hostRequest(path: string, hostname: string, body?: unknown) {
    const { port } = new URL(host.url);
    return new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path,
          method: body === undefined ? 'GET' : 'POST',
          headers: { host: `${hostname}:${port}`, 'content-type': 'application/json' },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on('error', reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  }

  it('serves the feed only to requests for its host, as its GET does', async () => {
    expect((await hostRequest('/admin/16/changes', 'admin.localhost')).status).toBe(200);
    expect((await hostRequest('/admin/16/changes', 'www.localhost')).status).toBe(404);
    const feeds = { feeds: { '/admin/16/changes': null } };
    expectStatus(await hostRequest('/poll', 'admin.localhost', feeds), 200);
    expectStatus(await hostRequest('/poll', 'www.localhost', feeds), 400);
  });
});
