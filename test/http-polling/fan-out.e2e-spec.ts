import { Agent } from 'node:http';
import { Client } from 'pg';
import { HeldRequests } from '../../src/http-polling/held-requests.service';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { createItemsTable } from '../support/polling-app';
import { send } from '../support/http-get';
import { waitFor } from '../support/wait-for';
import { startItemsApp, type ItemsApp } from '../fixtures/items-app';

interface ChangesBody {
  changes: { id: string; op: string }[];
  cursor: string;
}

const POLLS = 1000;
// Longer than holding 1,000 polls can take on a loaded machine, so none times out before the change.
const WAIT_S = 55;

describe('long-poll fan-out', () => {
  let db: TestDatabase;
  let items: ItemsApp;
  let writer: Client;
  let held: HeldRequests;
  const agent = new Agent({ keepAlive: true, maxSockets: Infinity });

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    items = await startItemsApp(db.url, { http: { maxHeldPerClient: 10_000 } });
    held = items.app.get(HeldRequests);
    writer = new Client(db.config);
    await writer.connect();
  });

  afterAll(async () => {
    agent.destroy();
    await writer?.end();
    await items?.close();
    await db?.drop();
  });

  async function headCursor(run: number): Promise<string> {
    const { reply } = send(`${items.url}/runs/${run}/changes`, agent);
    const res = await reply;
    expect(res.status).toBe(200);
    return (JSON.parse(res.body) as ChangesBody).cursor;
  }

  it('wakes 1,000 held polls of one feed with the change, and no poll of another feed', async () => {
    const other = send(
      `${items.url}/runs/2/changes?since=${await headCursor(2)}&wait=${WAIT_S}`,
      agent,
    );
    const otherSettled = jest.fn();
    other.reply.then(otherSettled, otherSettled);
    await waitFor(() => held.size === 1, { message: 'the run 2 poll was not held' });

    const cursor = await headCursor(1);
    const polls = Array.from(
      { length: POLLS },
      () => send(`${items.url}/runs/1/changes?since=${cursor}&wait=${WAIT_S}`, agent).reply,
    );
    await waitFor(() => held.size === POLLS + 1, {
      timeoutMs: 20_000,
      message: `only some of ${POLLS} polls were held`,
    });

    const { rows } = await writer.query(
      "INSERT INTO items (run, body) VALUES (1, 'fan-out') RETURNING id",
    );
    const id = rows[0].id as string;
    const replies = await Promise.all(polls);

    const outcomes: Record<string, number> = {};
    for (const { status, headers } of replies) {
      const wake = headers['poll-wake'];
      outcomes[`${status} ${wake}`] = (outcomes[`${status} ${wake}`] ?? 0) + 1;
    }
    expect(outcomes).toEqual({ '200 change': POLLS });
    // All woken by the change, well inside their 20 s wait; how fast is bench/'s fan-out row.
    const missing = replies.filter(
      (reply) => !(JSON.parse(reply.body) as ChangesBody).changes.some((c) => c.id === id),
    );
    expect(missing).toHaveLength(0);

    // Only the run 2 poll is still held, and it was not answered.
    expect(held.size).toBe(1);
    expect(held.feedCount).toBe(1);
    expect(otherSettled).not.toHaveBeenCalled();

    other.request.destroy();
    await waitFor(() => held.size === 0, { message: 'the aborted run 2 poll stayed held' });
    expect(held.feedCount).toBe(0);
    expect(otherSettled).toHaveBeenCalled();
  });
});
