import { Client } from 'pg';
import { MemoryChangeIndex } from '../../src/change-index/memory-change-index';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { TcpProxy } from '../support/tcp-proxy';
import { waitFor } from '../support/wait-for';
import {
  createItemsTable,
  itemsOptions,
  startPollingApp,
  type PollingApp,
} from '../support/polling-app';

/** Review of the reader's stop: it must end promptly and leave nothing open behind it. */
describe('a stopping reader', () => {
  let db: TestDatabase;
  let admin: Client;

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    admin = new Client(db.config);
    await admin.connect();
  });

  afterAll(async () => {
    await admin?.end();
    await db?.drop();
  });

  const pruners = async () =>
    Number(
      (
        await admin.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity
           WHERE datname = current_database() AND application_name = 'nestjs-polling pruner'`,
        )
      ).rows[0].n,
    );

  it('stops at once while it waits to reconnect (the database is down)', async () => {
    const proxy = await TcpProxy.start(Number(new URL(db.url).port || 5432));
    const viaProxy = new URL(db.url);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String(proxy.port);
    const polling = await startPollingApp(
      itemsOptions(db, { postgres: { url: viaProxy.toString() } }),
    );
    try {
      proxy.refuse(true);
      // Backoff 100, 200, 400, 800, 1600 ms, then 3200: the reader sleeps out a long wait.
      await new Promise((resolve) => setTimeout(resolve, 3500));
      const started = performance.now();
      await polling.reader.beforeApplicationShutdown();
      const tookMs = performance.now() - started;
      // Nothing to finish or clean up: no connection is open.
      expect(tookMs).toBeLessThan(1000);
    } finally {
      await polling.close();
      await proxy.close();
    }
  }, 20_000);

  it('leaves no pruner connection open when it stops in the middle of a prune round', async () => {
    // The first prune round (due at once) stalls in its index trim until the app is stopping.
    let releaseTrim!: () => void;
    const trimHeld = new Promise<void>((resolve) => (releaseTrim = resolve));
    let trimEntered = false;
    const original = MemoryChangeIndex.prototype.expiredPosition;
    const spy = jest
      .spyOn(MemoryChangeIndex.prototype, 'expiredPosition')
      .mockImplementation(async function (this: MemoryChangeIndex, before: number) {
        trimEntered = true;
        await trimHeld;
        return original.call(this, before);
      });
    let polling: PollingApp | null = null;
    try {
      polling = await startPollingApp(itemsOptions(db));
      await waitFor(() => trimEntered, { timeoutMs: 5000, message: 'no prune round began' });
      const closing = polling.close();
      // The round carries on once the stop has begun (a slow trim of a large index).
      setTimeout(releaseTrim, 50);
      await closing;
      polling = null;
      await new Promise((resolve) => setTimeout(resolve, 500));
      // An open pruner connection after the app closed keeps the process from exiting.
      expect(await pruners()).toBe(0);
    } finally {
      spy.mockRestore();
      releaseTrim();
      await polling?.close();
    }
  }, 20_000);
  const viaNewProxy = async () => {
    const proxy = await TcpProxy.start(Number(new URL(db.url).port || 5432));
    const url = new URL(db.url);
    url.hostname = '127.0.0.1';
    url.port = String(proxy.port);
    return { proxy, url: url.toString() };
  };

  it('stops within its grace when its connection went half-open while it led', async () => {
    const { proxy, url } = await viaNewProxy();
    const polling = await startPollingApp(itemsOptions(db, { postgres: { url } }));
    try {
      proxy.freezeOpenConnections();
      const started = performance.now();
      await polling.reader.beforeApplicationShutdown();
      expect(performance.now() - started).toBeLessThan(1500);
    } finally {
      await polling.close();
      await proxy.close();
    }
  }, 20_000);

  it('stops at once while it connects to a server that does not answer', async () => {
    const { proxy, url } = await viaNewProxy();
    const polling = await startPollingApp(itemsOptions(db, { postgres: { url } }));
    try {
      // The link goes silent: the lead's next read times out (5 s), then the reconnect hangs.
      proxy.latencyMs = 60_000;
      proxy.freezeOpenConnections();
      await waitFor(() => polling.reader.backendPid === null, {
        timeoutMs: 10_000,
        message: 'the reader never dropped its dead connection',
      });
      await new Promise((resolve) => setTimeout(resolve, 500)); // past the first backoff: connecting
      const started = performance.now();
      await polling.reader.beforeApplicationShutdown();
      expect(performance.now() - started).toBeLessThan(1500);
    } finally {
      await polling.close();
      await proxy.close();
    }
  }, 30_000);
  it("clears only its own gate bit: another instance's stays set", async () => {
    const gate = async () =>
      BigInt((await admin.query('SELECT last_value::text AS v FROM polling_wake_gate')).rows[0].v);
    const bits = (v: bigint) =>
      v
        .toString(2)
        .split('')
        .filter((b) => b === '1').length;
    const a = await startPollingApp(itemsOptions(db));
    const b = await startPollingApp(itemsOptions(db));
    let aOpen = true;
    try {
      await waitFor(async () => bits(await gate()) === 2, {
        timeoutMs: 5000,
        message: 'both idle readers never armed',
      });
      await a.close();
      aOpen = false;
      expect(bits(await gate())).toBe(1);
      // The survivor still sleeps armed: a write wakes it through its bit.
      await admin.query('INSERT INTO items (run) VALUES (7)');
      await waitFor(async () => bits(await gate()) === 1, { timeoutMs: 2000 });
    } finally {
      if (aOpen) await a.close();
      await b.close();
    }
  }, 20_000);
});
