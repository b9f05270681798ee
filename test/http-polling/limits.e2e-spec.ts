import { type PollingModuleOptions } from '../../src';
import { HeldRequests } from '../../src/http-polling/held-requests.service';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { createItemsTable } from '../support/polling-app';
import { waitFor } from '../support/wait-for';
import { startItemsApp, type ItemsApp } from '../fixtures/items-app';
import type { PlatformOptions } from '../support/http-platform';

interface ErrorBody {
  statusCode: number;
  error?: string;
  message: unknown;
}

interface HeldPoll {
  abort(): void;
  /** The response, or null when the poll was aborted. */
  done: Promise<Response | null>;
}

describe('admission limits over HTTP', () => {
  let db: TestDatabase;
  let items: ItemsApp | undefined;
  let polls: HeldPoll[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
  });

  afterEach(async () => {
    for (const poll of polls) poll.abort();
    await Promise.all(polls.map((p) => p.done));
    polls = [];
    // After an abort, fetch (undici) opens a spare connection that never sends a request; Node's
    // server.close() does not count it as idle and would wait ~4 s for undici to drop it.
    items?.app.getHttpServer().closeAllConnections();
    await items?.close();
    items = undefined;
  });

  afterAll(async () => {
    await db?.drop();
  });

  /** A fresh app per case, on the same database, one after the other. */
  async function start(
    http: PollingModuleOptions['http'],
    platformOptions?: PlatformOptions,
  ): Promise<ItemsApp> {
    items = await startItemsApp(db.url, { http }, undefined, platformOptions);
    return items;
  }

  async function headCursor(app: ItemsApp, run = 1): Promise<string> {
    const res = await fetch(`${app.url}/runs/${run}/changes`);
    expect(res.status).toBe(200);
    return res.headers.get('poll-cursor')!;
  }

  /** Starts a long poll that the server holds (nothing changes on the feed). */
  function hold(app: ItemsApp, cursor: string, headers: Record<string, string> = {}): HeldPoll {
    const controller = new AbortController();
    const done = fetch(`${app.url}/runs/1/changes?since=${cursor}&wait=20`, {
      headers,
      signal: controller.signal,
    }).catch((error: Error) => {
      if (error.name === 'AbortError') return null;
      throw error;
    });
    const poll = { abort: () => controller.abort(), done };
    polls.push(poll);
    return poll;
  }

  const heldCount = (app: ItemsApp) => app.app.get(HeldRequests).size;

  async function holdAndWait(app: ItemsApp, begin: () => HeldPoll[]): Promise<HeldPoll[]> {
    const started = begin();
    await waitFor(() => heldCount(app) === started.length, {
      timeoutMs: 3000,
      message: `expected ${started.length} held requests`,
    });
    return started;
  }

  async function expectRejected(res: Response, status: number): Promise<void> {
    expect(res.status).toBe(status);
    const retryAfter = Number(res.headers.get('retry-after'));
    expect(Number.isInteger(retryAfter)).toBe(true);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const body = (await res.json()) as ErrorBody;
    expect(body.statusCode).toBe(status);
    expect(body.error).toBe(status === 429 ? 'Too Many Requests' : 'Service Unavailable');
    expect(typeof body.message).toBe('string');
    expect((body.message as string).length).toBeGreaterThan(0);
  }

  async function releaseAll(app: ItemsApp, held: HeldPoll[]): Promise<void> {
    for (const poll of held) poll.abort();
    expect(await Promise.all(held.map((p) => p.done))).toEqual(held.map(() => null));
    await waitFor(() => heldCount(app) === 0, { message: 'aborted polls were not released' });
  }

  it('answers 429 + Retry-After beyond the per-client held limit, and admits again after release', async () => {
    const app = await start({ maxHeldPerClient: 2 });
    const cursor = await headCursor(app);
    const held = await holdAndWait(app, () => [hold(app, cursor), hold(app, cursor)]);

    await expectRejected(await fetch(`${app.url}/runs/1/changes?since=${cursor}&wait=20`), 429);
    // A request that is not held is not limited by the held count.
    const immediate = await fetch(`${app.url}/runs/1/changes?since=${cursor}&wait=0`);
    expect(immediate.status).toBe(200);
    await immediate.arrayBuffer();
    expect(heldCount(app)).toBe(2);

    await releaseAll(app, held);
    const again = await fetch(`${app.url}/runs/1/changes?since=${cursor}&wait=0.3`);
    expect(again.status).toBe(204);
    expect(again.headers.get('poll-cursor')).toBe(cursor);
  });

  it('answers 503 + Retry-After beyond the global held limit', async () => {
    const app = await start({ maxHeld: 3 });
    const cursor = await headCursor(app);
    const held = await holdAndWait(app, () => [
      hold(app, cursor),
      hold(app, cursor),
      hold(app, cursor),
    ]);

    await expectRejected(await fetch(`${app.url}/runs/1/changes?since=${cursor}&wait=20`), 503);
    expect(heldCount(app)).toBe(3);

    await releaseAll(app, held);
    const again = await fetch(`${app.url}/runs/1/changes?since=${cursor}&wait=0.3`);
    expect(again.status).toBe(204);
  });

  it('answers 429 + Retry-After: 1 to a poll sooner than minPollIntervalMs', async () => {
    const app = await start({ minPollIntervalMs: 1000 });
    const cursor = await headCursor(app);
    const res = await fetch(`${app.url}/runs/1/changes?since=${cursor}&wait=0`);
    await expectRejected(res, 429);
    expect(res.headers.get('retry-after')).toBe('1');
    // The short poll route is limited the same way.
    await expectRejected(await fetch(`${app.url}/runs/1/poll?since=${cursor}`), 429);

    await new Promise((r) => setTimeout(r, 1050));
    const later = await fetch(`${app.url}/runs/1/changes?since=${cursor}&wait=0`);
    expect(later.status).toBe(200);
    await later.arrayBuffer();
  });

  it('follows a custom clientKey for the per-client limit', async () => {
    const app = await start({
      maxHeldPerClient: 1,
      clientKey: (req) => String(req.headers['x-client']),
    });
    const cursor = await headCursor(app);
    const held = await holdAndWait(app, () => [
      hold(app, cursor, { 'x-client': 'a' }),
      hold(app, cursor, { 'x-client': 'b' }),
    ]);
    const url = `${app.url}/runs/1/changes?since=${cursor}&wait=20`;
    await expectRejected(await fetch(url, { headers: { 'x-client': 'a' } }), 429);
    await expectRejected(await fetch(url, { headers: { 'x-client': 'b' } }), 429);

    // A third client still has its own quota.
    held.push(hold(app, cursor, { 'x-client': 'c' }));
    await waitFor(() => heldCount(app) === 3, { message: 'client c was not held' });
    expect(app.app.get(HeldRequests).heldBy('c')).toBe(1);

    await releaseAll(app, held);
    const again = await fetch(`${app.url}/runs/1/changes?since=${cursor}&wait=0.3`, {
      headers: { 'x-client': 'a' },
    });
    expect(again.status).toBe(204);
  });

  it('behind a proxy with trust proxy: each X-Forwarded-For address has its own limit', async () => {
    const from = (address: string) => ({ 'x-forwarded-for': address });
    // Without trust proxy the header is ignored: every client is the proxy's address.
    const untrusting = await start({ maxHeldPerClient: 1 });
    const before = await headCursor(untrusting);
    const first = await holdAndWait(untrusting, () => [
      hold(untrusting, before, from('203.0.113.1')),
    ]);
    await expectRejected(
      await fetch(`${untrusting.url}/runs/1/changes?since=${before}&wait=20`, {
        headers: from('203.0.113.2'),
      }),
      429,
    );
    await releaseAll(untrusting, first);
    untrusting.app.getHttpServer().closeAllConnections();
    await untrusting.close();

    // Express's `trust proxy` setting, Fastify's `trustProxy` option.
    const app = await start({ maxHeldPerClient: 1 }, { trustProxy: 'loopback' });
    const cursor = await headCursor(app);
    const url = `${app.url}/runs/1/changes?since=${cursor}&wait=20`;
    const held = await holdAndWait(app, () => [
      hold(app, cursor, from('203.0.113.1')),
      hold(app, cursor, from('203.0.113.2')),
    ]);
    expect(app.app.get(HeldRequests).heldBy('203.0.113.1')).toBe(1);
    expect(app.app.get(HeldRequests).heldBy('203.0.113.2')).toBe(1);
    await expectRejected(await fetch(url, { headers: from('203.0.113.1') }), 429);
    // A client cannot pick its key by sending the header itself: the proxy appends the address
    // it saw, and that last entry counts.
    await expectRejected(await fetch(url, { headers: from('198.51.100.7, 203.0.113.2') }), 429);
    await releaseAll(app, held);
  });

  it('keys on an API key from clientKey, and on the address when it gives none', async () => {
    const app = await start({
      maxHeldPerClient: 1,
      clientKey: (req) => req.headers['x-api-key'] as string | undefined,
    });
    const cursor = await headCursor(app);
    const url = `${app.url}/runs/1/changes?since=${cursor}&wait=20`;
    const held = await holdAndWait(app, () => [
      hold(app, cursor, { 'x-api-key': 'key-1' }),
      hold(app, cursor, { 'x-api-key': 'key-2' }),
      hold(app, cursor),
    ]);
    const heldRequests = app.app.get(HeldRequests);
    expect([heldRequests.heldBy('key-1'), heldRequests.heldBy('key-2')]).toEqual([1, 1]);
    expect(heldRequests.heldBy('::ffff:127.0.0.1') + heldRequests.heldBy('127.0.0.1')).toBe(1);
    await expectRejected(await fetch(url, { headers: { 'x-api-key': 'key-1' } }), 429);
    await expectRejected(await fetch(url), 429);
    await releaseAll(app, held);
  });
});
