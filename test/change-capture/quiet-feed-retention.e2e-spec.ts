import Redis from 'ioredis';
import { Client } from 'pg';
import type { PollingModuleOptions } from '../../src';
import { startItemsApp, type ItemsApp } from '../fixtures/items-app';
import { createItemsTable } from '../support/polling-app';
import { deleteKeys, redisUrl, uniquePrefix } from '../support/redis-test';
import { createTestDatabase, type TestDatabase } from '../support/test-database';

const MAX_AGE_MS = 4000;
const FOLLOW_MS = 9000;

/**
 * Index retention must not turn a quiet feed's followers away. While other feeds keep changing,
 * the index floor rises at every prune round; a client that keeps long-polling a feed that never
 * changes (or whose last change aged out) holds a current cursor and must never get a 409: it
 * missed nothing, and a 409 makes it reload its whole state (every quiet feed's client, once per
 * prune round). Its holds (1 s) are within the retention (4 s) or, where the retention is
 * shorter than one poll (20 rows), within the minimum time a quiet feed's floor is remembered.
 */
interface Variant {
  label: string;
  /** A Redis index (under its own key prefix), else the in-memory one. */
  shared: boolean;
  retention: PollingModuleOptions['retention'];
}

const VARIANTS: Variant[] = [
  { label: 'Redis index, by age', shared: true, retention: { maxAgeMs: MAX_AGE_MS } },
  { label: 'in-memory index, by age', shared: false, retention: { maxAgeMs: MAX_AGE_MS } },
  // 20 rows: the busy feed writes them in 0.2 s, far less than one long poll.
  { label: 'Redis index, by rows', shared: true, retention: { maxRows: 20 } },
];

/** One app per variant on a database of its own, so the variants can be followed at once. */
interface Running {
  label: string;
  db: TestDatabase;
  writer: Client;
  items: ItemsApp;
  redis?: { client: Redis; keyPrefix: string };
}

async function start({ label, shared, retention }: Variant): Promise<Running> {
  const db = await createTestDatabase();
  await createItemsTable(db);
  const writer = new Client(db.config);
  await writer.connect();
  const options: Partial<PollingModuleOptions> = { retention, reader: { pruneIntervalMs: 200 } };
  let redis: Running['redis'];
  if (shared) {
    redis = { client: new Redis(redisUrl()), keyPrefix: uniquePrefix('quiet') };
    Object.assign(options, { redis: { url: redisUrl() }, keyPrefix: redis.keyPrefix });
  }
  return { label, db, writer, redis, items: await startItemsApp(db.url, options) };
}

async function stop({ db, writer, items, redis }: Running): Promise<void> {
  await items.close();
  await writer.end();
  if (redis) {
    await deleteKeys(redis.client, redis.keyPrefix);
    await redis.client.quit();
  }
  await db.drop();
}

/** Long-polls `run` (1 s holds) for FOLLOW_MS; returns the statuses it got. */
async function follow(items: ItemsApp, run: number): Promise<number[]> {
  const first = await fetch(`${items.url}/runs/${run}/changes`);
  expect(first.status).toBe(200);
  let cursor = ((await first.json()) as { cursor: string }).cursor;
  const statuses: number[] = [];
  const until = Date.now() + FOLLOW_MS;
  while (Date.now() < until) {
    const res = await fetch(`${items.url}/runs/${run}/changes?since=${cursor}&wait=1`);
    statuses.push(res.status);
    const body = res.status === 204 ? null : ((await res.json()) as { cursor: string });
    cursor = body?.cursor ?? res.headers.get('poll-cursor')!;
  }
  return statuses;
}

/** Writes to feed run=2 every 50 ms until stopped: the floor keeps rising. */
function busyFeed(writer: Client): { stop(): Promise<void> } {
  let running = true;
  const loop = (async () => {
    while (running) {
      await writer.query(
        "INSERT INTO items (run, body) SELECT 2, 'busy' FROM generate_series(1, 5)",
      );
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

/** Follows a feed that never changes (run 1) and one whose only change ages out (run 3). */
async function followQuietFeeds({ label, writer, items }: Running) {
  await writer.query("INSERT INTO items (run, body) VALUES (3, 'once')");
  const busy = busyFeed(writer);
  try {
    const [neverChanged, agedOut] = await Promise.all([follow(items, 1), follow(items, 3)]);
    return { label, neverChanged, agedOut };
  } finally {
    await busy.stop();
  }
}

describe('a quiet feed under index retention', () => {
  const running: Running[] = [];

  beforeAll(async () => {
    for (const variant of VARIANTS) running.push(await start(variant));
  });

  afterAll(async () => {
    for (const app of running) await stop(app);
  });

  // All variants and both followers at once: each follows for longer than the retention.
  it(`never sends a 409 to a client following a feed that never changed, or whose changes aged out (${VARIANTS.map((v) => v.label).join('; ')})`, async () => {
    const outcomes = await Promise.all(running.map(followQuietFeeds));
    for (const { label, neverChanged, agedOut } of outcomes) {
      expect({ label, polls: neverChanged.length > 3 && agedOut.length > 3 }).toEqual({
        label,
        polls: true,
      });
      expect({ label, neverChanged: neverChanged.filter((s) => s !== 204) }).toEqual({
        label,
        neverChanged: [],
      });
      // The first poll may still see the change; after it, nothing but "no change".
      expect({ label, agedOut: agedOut.slice(1).filter((s) => s !== 204) }).toEqual({
        label,
        agedOut: [],
      });
    }
  }, 30_000);
});
