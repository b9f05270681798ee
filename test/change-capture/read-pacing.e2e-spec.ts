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
 * While changes flow the reader pauses between reads (read-cadence.ts), so its share of the
 * machine stays bounded while writers are busy (issue 16). Busy writers that saw the gate armed
 * send NOTIFYs while the reader closes it; a wake the reader never consumed ended every later
 * pause at once, and the reader read back to back for as long as the writers kept writing (12,953
 * reads in a 5 s bench load instead of ~500).
 */
describe('the reader paces its reads while busy writers commit', () => {
  let db: TestDatabase;
  let app: ItemsApp;
  let probe: Client;
  let reads = 0;
  const read = ChangeLogQueries.prototype.read;

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    probe = new Client(db.config);
    await probe.connect();
    app = await startItemsApp(db.url);
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
    await app?.close();
    await probe?.end();
    await db?.drop();
  });

  it('reads at most once per pause after a NOTIFY woke it, and indexes every change', async () => {
    const gateArmed = async () =>
      Number((await probe.query('SELECT last_value FROM polling_wake_gate')).rows[0].last_value) !==
      0;
    const head = ((await (await fetch(`${app.url}/runs/7/changes`)).json()) as { cursor: string })
      .cursor;
    await waitFor(gateArmed, { timeoutMs: 5000, message: 'the idle reader never armed the gate' });

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
    await Promise.all(writers.map((c) => c.end()));

    // Each pause lasts MIN_READ_PAUSE_MS or more; a timer may fire up to 1 ms early.
    const mostReads = elapsedMs / (MIN_READ_PAUSE_MS - 1);
    expect(readsDuringLoad).toBeLessThan(mostReads);

    // Every change reaches the feed: follow it from before the load until all are listed.
    let seen = 0;
    let cursor = head;
    await waitFor(
      async () => {
        const res = await fetch(`${app.url}/runs/7/changes?since=${cursor}&wait=1`);
        if (res.status === 200) {
          const body = (await res.json()) as { changes: unknown[]; cursor: string };
          seen += body.changes.length;
          cursor = body.cursor;
        }
        return seen >= written;
      },
      { timeoutMs: 15_000, intervalMs: 0, message: `the feed never listed all ${written} items` },
    );
    expect(seen).toBe(written);
  }, 30_000);
});
