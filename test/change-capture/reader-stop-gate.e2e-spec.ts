import { Client, type Notification } from 'pg';
import { wakeChannel } from '../../src/change-capture/schema/schema-name';
import { startItemsFixture, type ItemsFixture } from '../fixtures/items-app';
import { waitFor } from '../support/wait-for';

/**
 * The last instance stops (a deploy that stops every instance first, scaling to zero, the app
 * taken down for maintenance) while its idle reader has its gate bit set. Left set, the bit makes
 * every writer NOTIFY, serialised on the notify queue's lock, for a reader that is gone, until
 * some reader starts again: writes ran at a fraction of their speed meanwhile. A reader that stops
 * clears its own bit.
 */
describe('the last reader stops while its gate bit is set', () => {
  let fixture: ItemsFixture;
  let running = true;

  const gate = async () =>
    BigInt(
      (await fixture.writer.query('SELECT last_value::text AS v FROM polling_wake_gate')).rows[0].v,
    );

  beforeAll(async () => {
    fixture = await startItemsFixture();
  });

  afterAll(async () => {
    if (running) await fixture?.items.close();
    await fixture?.writer.end();
    await fixture?.db.drop();
  });

  it('clears its bit, so writers send no NOTIFY once it is gone', async () => {
    await waitFor(async () => (await gate()) !== 0n, {
      timeoutMs: 5000,
      message: 'the idle reader never armed the gate',
    });
    await fixture.items.close();
    running = false;
    expect(await gate()).toBe(0n);

    const listener = new Client(fixture.db.config);
    await listener.connect();
    const notified: Notification[] = [];
    listener.on('notification', (n) => notified.push(n));
    await listener.query(`LISTEN "${wakeChannel('public')}"`);
    for (let i = 0; i < 5; i++) await fixture.writer.query('INSERT INTO items (run) VALUES (1)');
    // A NOTIFY is delivered at its commit: one more round trip on the listener is enough.
    await listener.query('SELECT 1');
    await listener.end();
    expect(notified).toEqual([]);
  });
});
