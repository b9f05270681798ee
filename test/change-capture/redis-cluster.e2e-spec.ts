import { Client } from 'pg';
import type { IndexKeys } from '../../src/change-capture/index-keys';
import { POLLING_INDEX_KEYS } from '../../src/polling.tokens';
import { startItemsApp, type ItemsApp } from '../fixtures/items-app';
import { createItemsTable, insertItem } from '../support/polling-app';
import { OwnedRedisCluster } from '../support/redis-cluster';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { waitFor } from '../support/wait-for';

interface ChangesBody {
  changes: { id: string }[];
  cursor: string;
}

/** A client of run 1's feed: long polls, and on a 409 reloads the list, as it was told to. */
class Follower {
  readonly seen = new Set<string>();
  refetches = 0;
  private stopped = false;
  private done: Promise<void> = Promise.resolve();

  constructor(private readonly app: ItemsApp) {}

  async start(): Promise<void> {
    const cursor = await this.reload();
    this.done = this.loop(cursor);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }

  private async loop(cursor: string): Promise<void> {
    while (!this.stopped) {
      const res = await fetch(`${this.app.url}/runs/1/changes?since=${cursor}&wait=1`).catch(
        () => null,
      );
      if (res?.status === 200) {
        const body = (await res.json()) as ChangesBody;
        for (const change of body.changes) this.seen.add(change.id);
        cursor = body.cursor;
      } else if (res?.status === 409) {
        await res.arrayBuffer();
        this.refetches++;
        cursor = await this.reload();
      } else {
        await res?.arrayBuffer();
        // 204, or 503 while the index's master fails over: ask again shortly.
        if (res?.status !== 204) await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }

  /** The list (every row of run 1) and the cursor to follow it from. */
  private async reload(): Promise<string> {
    for (;;) {
      const res = await fetch(`${this.app.url}/runs/1/items?limit=1000`).catch(() => null);
      if (res?.status === 200) {
        const body = (await res.json()) as { items: { id: string }[]; feedCursor: string };
        for (const item of body.items) this.seen.add(String(item.id));
        return body.feedCursor;
      }
      await res?.arrayBuffer();
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

/**
 * Two instances of the items app on one Redis Cluster (3 masters, 3 replicas): the index lives in
 * one slot under a hash tag, the bus is sharded pub/sub on that slot.
 */
describe('the polling module on a Redis Cluster', () => {
  let db: TestDatabase;
  let cluster: OwnedRedisCluster;
  let writer: Client;
  const apps: ItemsApp[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    writer = new Client(db.config);
    await writer.connect();
    cluster = await OwnedRedisCluster.start({ masters: 3, replicas: true });
    for (let i = 0; i < 2; i++) {
      apps.push(await startItemsApp(db.url, { redis: { cluster: cluster.nodes } }));
    }
  }, 90_000);

  afterAll(async () => {
    for (const app of apps) await app.close();
    await cluster?.stop();
    await writer?.end();
    await db?.drop();
  });

  /** Every instance holds a long poll at the head; one write must answer all of them at once. */
  async function wakesEveryInstance(): Promise<void> {
    const cursors = await Promise.all(
      apps.map(async (app) => {
        const res = await fetch(`${app.url}/runs/1/changes`);
        return ((await res.json()) as ChangesBody).cursor;
      }),
    );
    const held = apps.map((app, i) =>
      fetch(`${app.url}/runs/1/changes?since=${cursors[i]}&wait=30`),
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    const started = Date.now();
    const id = await insertItem(writer, 1);
    const answers = await Promise.all(
      held.map(async (pending) => {
        const res = await pending;
        return {
          status: res.status,
          ids: ((await res.json()) as ChangesBody).changes.map((c) => c.id),
        };
      }),
    );
    expect(answers).toEqual(apps.map(() => ({ status: 200, ids: [id] })));
    expect(Date.now() - started).toBeLessThan(3000);
  }

  it('wakes the held polls of every instance through sharded pub/sub', async () => {
    await wakesEveryInstance();
  }, 30_000);

  it('wakes every instance again after a manual CLUSTER FAILOVER (the old master stays up)', async () => {
    const keys = apps[0].app.get<IndexKeys>(POLLING_INDEX_KEYS);
    const master = await cluster.masterOf(`${keys.prefix}meta`);
    const promoted = await cluster.failover(master);
    // The bus key shares the index's slot, so the promoted node serves it too, once the node we
    // ask has heard of the failover (gossip: CLUSTER SLOTS of another node can lag a moment).
    await waitFor(async () => (await cluster.masterOf(`${keys.prefix}bus`)) === promoted, {
      message: `the bus key's slot is not served by the promoted master ${promoted}`,
    });
    // The old master dropped its sharded subscribers (it serves the slot no more): each instance
    // must find the new master, subscribe, and wake its waiters, so a write now reaches all.
    await wakesEveryInstance();
  }, 60_000);

  it('survives the index master being killed during writes: followers recover or refetch, never a gap', async () => {
    const followers = apps.flatMap((app) => [new Follower(app), new Follower(app)]);
    for (const follower of followers) await follower.start();
    const keys = apps[0].app.get<IndexKeys>(POLLING_INDEX_KEYS);
    const master = await cluster.masterOf(`${keys.prefix}meta`);

    const committed: string[] = [];
    const writes = (async () => {
      for (let i = 0; i < 150; i++) {
        committed.push(await insertItem(writer, 1));
        if (i === 40) await cluster.kill(master); // a crash: the replica is promoted after ~1 s
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    await writes;
    await cluster.waitUntilOk();

    for (const follower of followers) {
      await waitFor(() => committed.every((id) => follower.seen.has(id)), {
        timeoutMs: 20_000,
        message: `a follower is missing changes: ${committed.filter((id) => !follower.seen.has(id)).length} of ${committed.length}`,
      });
    }
    for (const follower of followers) await follower.stop();
    const all = new Set(committed);
    const { rows } = await writer.query<{ id: string }>('SELECT id FROM items WHERE run = 1');
    for (const row of rows) all.add(String(row.id));
    for (const follower of followers) {
      expect([...follower.seen].filter((id) => !all.has(id))).toEqual([]);
    }
    // The bus works again on the promoted master: a write wakes every instance at once.
    await wakesEveryInstance();
  }, 90_000);
});
