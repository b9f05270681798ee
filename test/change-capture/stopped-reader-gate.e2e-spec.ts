import { Client } from 'pg';
import { ChangeLogQueries } from '../../src/change-capture/change-log.queries';
import { MIN_READ_PAUSE_MS } from '../../src/change-capture/read-cadence';
import { startItemsApp, type ItemsApp } from '../fixtures/items-app';
import { createItemsTable } from '../support/polling-app';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { waitFor } from '../support/wait-for';

const WRITERS = 8;
const LOAD_MS = 2000;

/**
 * Two instances on one schema (in-memory indexes: each reads the log), both idle with their gate
 * bit set. One dies (its bit stays set; a reader that stops clears its own), and only an arm or a
 * disarm clears the bits of slots nobody holds. The other one wakes on the next write and never arms while changes flow, so
 * every writer NOTIFYs for as long as they write, and each NOTIFY ends the survivor's pause: it
 * read back to back (5,433 reads in 2 s, one per 1.6 commits) instead of pacing its reads.
 */
describe('an instance dies while its gate bit is set', () => {
  let db: TestDatabase;
  let app: ItemsApp;
  let gone: ItemsApp | null;
  let probe: Client;
  let reads = 0;
  const read = ChangeLogQueries.prototype.read;
  const gate = async () =>
    BigInt((await probe.query('SELECT last_value::text AS v FROM polling_wake_gate')).rows[0].v);
  const bits = (mask: bigint) => mask.toString(2).replace(/0/g, '').length;

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    probe = new Client(db.config);
    await probe.connect();
    app = await startItemsApp(db.url);
    gone = await startItemsApp(db.url);
    jest.spyOn(ChangeLogQueries.prototype, 'read').mockImplementation(function (
      this: ChangeLogQueries,
      ...args: Parameters<ChangeLogQueries['read']>
    ) {
      reads += 1;
      return read.apply(this, args);
    });
  });

  afterAll(async () => {
    jest.restoreAllMocks();
    await gone?.close();
    await app?.close();
    await probe?.end();
    await db?.drop();
  });

  it('the survivor paces its reads and writers stop sending NOTIFYs while changes flow', async () => {
    await waitFor(async () => bits(await gate()) === 2, {
      timeoutMs: 5000,
      message: 'the two idle readers never both armed the gate',
    });
    const armed = await gate();
    await gone!.close();
    gone = null;
    // A reader that stops clears its own bit (reader-stop-gate.e2e-spec.ts); one that dies (a
    // SIGKILL, a lost host) cannot: put its bit back, as a crash leaves it.
    expect(bits(await gate())).toBe(1);
    await probe.query('SELECT setval($1::regclass, $2::bigint, true)', [
      'polling_wake_gate',
      armed.toString(),
    ]);

    const listener = new Client(db.config);
    await listener.connect();
    let notified = 0;
    listener.on('notification', () => (notified += 1));
    await listener.query('LISTEN polling_wake_public');
    const writers = await Promise.all(
      Array.from({ length: WRITERS }, async () => {
        const c = new Client(db.config);
        await c.connect();
        return c;
      }),
    );
    let written = 0;
    reads = 0;
    const started = performance.now();
    await Promise.all(
      writers.map(async (c) => {
        while (performance.now() - started < LOAD_MS) {
          await c.query('INSERT INTO items (run) VALUES (7)');
          written += 1;
        }
      }),
    );
    const elapsedMs = performance.now() - started;
    const readsDuringLoad = reads;
    const notifiedDuringLoad = notified;
    await Promise.all([...writers, listener].map((c) => c.end()));

    // As in read-pacing.e2e-spec.ts: each pause lasts MIN_READ_PAUSE_MS or more (a timer may fire
    // up to 1 ms early).
    expect(readsDuringLoad).toBeLessThan(elapsedMs / (MIN_READ_PAUSE_MS - 1));
    // The survivor woke on the first writes and closed its own bit: writers that keep notifying
    // all along do so for a reader that is gone.
    expect(notifiedDuringLoad).toBeLessThan(written / 2);
  }, 30_000);
  it('a bit set for a reader that is gone while changes flow is cleared: writers stop notifying', async () => {
    await waitFor(async () => bits(await gate()) === 1, {
      timeoutMs: 5000,
      message: 'the idle survivor never armed the gate',
    });
    const writers = await Promise.all(
      Array.from({ length: WRITERS }, async () => {
        const c = new Client(db.config);
        await c.connect();
        return c;
      }),
    );
    const load = async (ms: number) => {
      const from = performance.now();
      let n = 0;
      await Promise.all(
        writers.map(async (c) => {
          while (performance.now() - from < ms) {
            await c.query('INSERT INTO items (run) VALUES (7)');
            n += 1;
          }
        }),
      );
      return n;
    };
    await load(300); // the survivor wakes, clears its bit and reads as changes flow
    // A reader on this schema dies armed now (slot 40: no session holds its lock).
    await probe.query("SELECT setval('polling_wake_gate', 1::bigint << 40, true)");
    const listener = new Client(db.config);
    await listener.connect();
    let notified = 0;
    listener.on('notification', () => (notified += 1));
    await listener.query('LISTEN polling_wake_public');
    const written = await load(LOAD_MS);
    const left = await gate();
    await Promise.all([...writers, listener].map((c) => c.end()));

    expect(left & (1n << 40n)).toBe(0n);
    // Writers stop notifying once the survivor has cleared the bit (it was left on for all).
    expect(notified).toBeLessThan(written / 2);
  }, 30_000);
});
