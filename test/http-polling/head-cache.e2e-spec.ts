import Redis from 'ioredis';
import { Client } from 'pg';
import { ChangeReader } from '../../src';
import { ChangeBus } from '../../src/change-bus/change-bus.service';
import { CHANGE_INDEX, type ChangeIndex } from '../../src/change-index/change-index.interface';
import { startItemsApp, type ItemsApp } from '../fixtures/items-app';
import { createItemsTable, insertItem } from '../support/polling-app';
import { OwnedRedisServer } from '../support/redis-server';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { waitFor } from '../support/wait-for';

/**
 * The 304 path serves each feed's head from a cache kept between index writes (FeedHeadCache).
 * Two instances share a throw-away Redis (this suite flushes it and kills its pub/sub clients);
 * A leads, so every change reaches B's cache through the bus only. The backstop (the longest a
 * cached head lives) is 30 s, longer than any step here: only the safeguard under test can make
 * B answer right, never the entry's age.
 */
describe('the cached feed head of the 304 path, two instances on one Redis', () => {
  const RESUBSCRIBE_MS = 4000;
  const MAX_ROWS = 20;
  let db: TestDatabase;
  let redis: OwnedRedisServer;
  let a: ItemsApp;
  let b: ItemsApp;
  let writer: Client;

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    redis = await OwnedRedisServer.start();
    // Retention by rows, pruned every 200 ms: the index is trimmed once it holds over 20 changes
    // (only the last test writes that many).
    const common = {
      keyPrefix: 'head-cache:',
      reader: { backstopMs: 30_000, pruneIntervalMs: 200 },
      retention: { maxRows: MAX_ROWS },
    };
    a = await startItemsApp(db.url, { ...common, redis: { url: redis.url } });
    expect(a.app.get(ChangeReader).role).toBe('leader');
    // B's pub/sub connection (a duplicate of this client) comes back only after RESUBSCRIBE_MS.
    b = await startItemsApp(db.url, {
      ...common,
      redis: {
        options: { host: '127.0.0.1', port: redis.port, retryStrategy: () => RESUBSCRIBE_MS },
      },
    });
    expect(b.app.get(ChangeReader).role).toBe('follower');
    for (const app of [a, b]) countHeadReads(app);
    writer = new Client(db.config);
    await writer.connect();
  });

  afterAll(async () => {
    await writer?.end();
    await b?.close();
    await a?.close();
    await redis?.stop();
    await db?.drop();
  });

  const reads = new Map<ItemsApp, number>();
  const headReads = (app: ItemsApp) => reads.get(app)!;

  /** Counts the head reads `app` sends to its index (the real index still answers them). */
  function countHeadReads(app: ItemsApp): void {
    const index = app.app.get<ChangeIndex>(CHANGE_INDEX);
    const read = index.feedPosition.bind(index);
    reads.set(app, 0);
    index.feedPosition = (feed) => {
      reads.set(app, headReads(app) + 1);
      return read(feed);
    };
  }

  async function headOf(app: ItemsApp, run: number): Promise<string> {
    const res = await fetch(`${app.url}/runs/${run}/changes`);
    expect(res.status).toBe(200);
    return res.headers.get('poll-cursor')!;
  }

  /** A short poll with the cursor as its ETag: 304 while the feed is where the cursor says. */
  function check(app: ItemsApp, run: number, cursor: string): Promise<Response> {
    return fetch(`${app.url}/runs/${run}/changes?since=${cursor}&wait=0`, {
      headers: { 'if-none-match': `"${cursor}"` },
    });
  }

  /** Both instances answer 304 for `cursor` (twice: the second from the cache). */
  async function cacheOnBoth(run: number, cursor: string): Promise<void> {
    for (const app of [a, b, a, b]) expect((await check(app, run, cursor)).status).toBe(304);
  }

  /** Waits until the leader's own check sees a change past `cursor` (the change is indexed). */
  async function indexedPast(run: number, cursor: string): Promise<void> {
    await waitFor(async () => (await check(a, run, cursor)).status === 200, {
      timeoutMs: 5000,
      message: `the change of run ${run} reached the index`,
    });
  }

  /** `app` answers the check from its cache: a 304 without an index read. */
  async function servedFromCache(app: ItemsApp, run: number, cursor: string): Promise<void> {
    const before = headReads(app);
    expect((await check(app, run, cursor)).status).toBe(304);
    expect(headReads(app)).toBe(before);
  }

  it('answers a quiet feed’s 304s from the cache: no index read per check', async () => {
    const cursor = await headOf(b, 5);
    await cacheOnBoth(5, cursor);
    const before = headReads(b);
    for (let i = 0; i < 20; i++) expect((await check(b, 5, cursor)).status).toBe(304);
    expect(headReads(b)).toBe(before);
  });

  it('a change indexed through A: B answers its next check 200 with the new ETag, never a stale 304', async () => {
    expect(a.app.get(ChangeReader).role).toBe('leader');
    const cursor = await headOf(a, 1);
    await cacheOnBoth(1, cursor);
    await servedFromCache(b, 1, cursor);
    const id = await insertItem(writer, 1, 'through A');
    await indexedPast(1, cursor);

    const res = await check(b, 1, cursor);
    expect(res.status).toBe(200);
    expect(res.headers.get('etag')).not.toBe(`"${cursor}"`);
    const body = (await res.json()) as { changes: { id: string }[]; cursor: string };
    expect(body.changes.map((c) => c.id)).toEqual([id]);
    expect(res.headers.get('etag')).toBe(`"${body.cursor}"`);
    // The new head is cached in turn: the new ETag is a 304 on both.
    await cacheOnBoth(1, body.cursor);
  });

  it('while B’s pub/sub connection is down, its check reads the index: a change is never hidden', async () => {
    expect(a.app.get(ChangeReader).role).toBe('leader'); // B learns of the change by the bus only
    const cursor = await headOf(a, 4);
    await cacheOnBoth(4, cursor);
    await servedFromCache(b, 4, cursor);
    const busB = b.app.get(ChangeBus);
    const admin = new Redis(redis.url);
    try {
      await admin.client('KILL', 'TYPE', 'pubsub');
    } finally {
      admin.disconnect();
    }
    await waitFor(() => !busB.linked, { message: 'B noticed its subscription closed' });
    const id = await insertItem(writer, 4, 'while B is deaf');
    await indexedPast(4, cursor);

    const res = await check(b, 4, cursor);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { changes: { id: string }[] };
    expect(body.changes.map((c) => c.id)).toEqual([id]);
    // The check above ran while the subscription was still down (it comes back after 4 s).
    expect(busB.linked).toBe(false);

    // Once subscribed again, B caches again: the new head answers 304.
    await waitFor(() => busB.linked, { timeoutMs: RESUBSCRIBE_MS + 5000, message: 'resubscribed' });
    const head = await headOf(b, 4);
    expect((await check(b, 4, head)).status).toBe(304);
  });

  it('after FLUSHDB and the new generation, the next check of an old cursor is a 409 on both', async () => {
    const cursor = await headOf(a, 2);
    await cacheOnBoth(2, cursor);
    await servedFromCache(b, 2, cursor);

    await redis.flushAll();
    // The leader's next append finds its generation lost and starts a new one (a reset notice).
    // Either may lead it (B's election may claim the wiped store first): the other one learns of
    // the reset by the bus. Wait for the first 409 (from either), then both must answer 409.
    await insertItem(writer, 3, 'after the flush');
    let turn = 0;
    await waitFor(async () => (await check([a, b][turn++ % 2], 2, cursor)).status === 409, {
      timeoutMs: 5000,
      message: 'a 409 for the old generation',
    });

    for (const app of [b, a]) {
      const res = await check(app, 2, cursor);
      expect(res.status).toBe(409);
      const body = (await res.json()) as { cursor: string };
      expect(res.headers.get('etag')).toBe(`"${body.cursor}"`);
      expect(body.cursor).not.toBe(cursor);
    }
  });

  it('a trim that moves a quiet feed’s head (the index floor) drops the cached head on both', async () => {
    const quiet = await headOf(a, 6); // run 6 never changes: its head is the index floor
    await cacheOnBoth(6, quiet);
    await servedFromCache(b, 6, quiet);
    for (let i = 0; i < MAX_ROWS; i++) await insertItem(writer, 7, `busy ${i}`);
    // The leader's pruner trims the index above the quiet feed's head, and tells the others. Its
    // rounds run when the reader wakes (at the latest every backstop, 30 s here): keep writing.
    await waitFor(
      async () => {
        await insertItem(writer, 7, 'busy');
        return (await check(a, 6, quiet)).status === 200;
      },
      { timeoutMs: 15_000, intervalMs: 200, message: 'the trim moved the quiet feed’s head' },
    );

    const res = await check(b, 6, quiet);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { changes: unknown[]; cursor: string };
    expect(body.changes).toEqual([]);
    expect(body.cursor).not.toBe(quiet);
  });
});
