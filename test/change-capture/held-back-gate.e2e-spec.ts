import { Client } from 'pg';
import { startItemsApp, type ItemsApp } from '../fixtures/items-app';
import { createItemsTable } from '../support/polling-app';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { waitFor } from '../support/wait-for';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Busy writers keep the wake gate closed even when one of them stalls (issue 16): while committed
 * changes wait behind an older writer's open transaction, the reader reads again instead of arming
 * the gate, which would make every writer NOTIFY (and serialise on the notify lock) meanwhile. A
 * transaction that stays open for long (a report, a session idle in a transaction) still ends in
 * an armed gate, and nothing is lost either way.
 */
describe('wake gate while committed changes wait behind an open transaction', () => {
  let db: TestDatabase;
  let stalled: Client;
  let writer: Client;
  let app: ItemsApp;

  const gateArmed = async () =>
    Number((await writer.query('SELECT last_value FROM polling_wake_gate')).rows[0].last_value) !==
    0;

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    stalled = new Client(db.config);
    writer = new Client(db.config);
    await Promise.all([stalled.connect(), writer.connect()]);
    app = await startItemsApp(db.url);
  });

  afterAll(async () => {
    await app?.close();
    await stalled?.end();
    await writer?.end();
    await db?.drop();
  });

  it('stays closed for a short stall, arms after a long one, and delivers both writes in commit order', async () => {
    const head = (await (await fetch(`${app.url}/runs/1/changes`)).json()) as { cursor: string };
    await waitFor(gateArmed, { timeoutMs: 5000, message: 'the idle reader never armed the gate' });

    // An older writer takes its xid and stalls; a younger one commits (its NOTIFY wakes the reader).
    await stalled.query('BEGIN');
    const older = await stalled.query('INSERT INTO items (run) VALUES (1) RETURNING id');
    const younger = await writer.query('INSERT INTO items (run) VALUES (1) RETURNING id');
    await waitFor(async () => !(await gateArmed()), {
      timeoutMs: 2000,
      message: "the younger write's NOTIFY did not wake the reader",
    });

    // Well past the 50 ms quiet spell after which an idle reader arms: still closed.
    const samples: boolean[] = [];
    for (let i = 0; i < 10; i++) {
      await sleep(50);
      samples.push(await gateArmed());
    }
    expect(samples).toEqual(Array(10).fill(false));

    // A stall this long is a long transaction, not a busy writer: the reader arms and waits.
    await waitFor(gateArmed, {
      timeoutMs: 3000,
      message: 'the gate never armed behind a long transaction',
    });

    await stalled.query('COMMIT');
    const res = await fetch(`${app.url}/runs/1/changes?since=${head.cursor}&wait=10`);
    const body = (await res.json()) as { changes: { id: string }[] };
    expect(body.changes.map((c) => c.id)).toEqual(
      [older.rows[0].id, younger.rows[0].id].sort((a, b) => Number(a) - Number(b)),
    );
  }, 30_000);
});
