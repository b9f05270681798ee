import { Agent } from 'node:http';
import { Client } from 'pg';
import { CHANGE_INDEX, type ChangeIndex } from '../../src/change-index/change-index.interface';
import { HeldRequests } from '../../src/http-polling/held-requests.service';
import { PollingEvents } from '../../src/http-polling/watch/polling-events.service';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { createItemsTable } from '../support/polling-app';
import { send, type Reply } from '../support/http-get';
import { waitFor } from '../support/wait-for';
import { startItemsApp, type ItemsApp } from '../fixtures/items-app';
import { testPlatform } from '../support/http-platform';

interface ChangesBody {
  changes: { id: string; op: string }[];
  cursor: string;
}

const POLLS = 1000;

/**
 * The app's real (in-memory) index, with its `changesSince` reads counted per feed and, while
 * `hold` is set, their answers kept back (the read itself runs at once) until `release`.
 */
function countReads(index: ChangeIndex) {
  const read = index.changesSince.bind(index);
  const state = {
    reads: new Map<string, number>(),
    hold: false,
    held: [] as (() => void)[],
    release(): void {
      for (const go of state.held.splice(0)) go();
    },
  };
  index.changesSince = async (...args: Parameters<ChangeIndex['changesSince']>) => {
    state.reads.set(args[0], (state.reads.get(args[0]) ?? 0) + 1);
    const answer = await read(...args);
    if (state.hold) await new Promise<void>((resolve) => state.held.push(resolve));
    return answer;
  };
  return state;
}

const timers = () => process.getActiveResourcesInfo().filter((t) => t === 'Timeout').length;

describe(`a woken group of held polls (${testPlatform()})`, () => {
  let db: TestDatabase;
  let items: ItemsApp;
  let writer: Client;
  let held: HeldRequests;
  let reads: ReturnType<typeof countReads>;
  // A pool per test: kept-alive sockets left idle by one test would be closed by the server
  // (keepAliveTimeout, 5 s on Express) while the next reuses them: "socket hang up".
  let agent: Agent;

  beforeEach(() => {
    agent = new Agent({ keepAlive: true, maxSockets: Infinity });
  });

  afterEach(() => agent.destroy());

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    items = await startItemsApp(db.url, { http: { maxHeldPerClient: 10_000 } });
    held = items.app.get(HeldRequests);
    reads = countReads(items.app.get<ChangeIndex>(CHANGE_INDEX));
    writer = new Client(db.config);
    await writer.connect();
  });

  afterAll(async () => {
    await writer?.end();
    await items?.close();
    await db?.drop();
  });

  async function headCursor(run: number): Promise<string> {
    const res = await send(`${items.url}/runs/${run}/changes`, agent).reply;
    expect(res.status).toBe(200);
    return (JSON.parse(res.body) as ChangesBody).cursor;
  }

  async function insert(run: number): Promise<string> {
    const { rows } = await writer.query<{ id: string }>(
      'INSERT INTO items (run, body) VALUES ($1, $2) RETURNING id::text AS id',
      [run, 'wake-group'],
    );
    return rows[0].id;
  }

  function expectChange(replies: Reply[], id: string): void {
    expect(replies.map((r) => `${r.status} ${String(r.headers['poll-wake'])}`)).toEqual(
      replies.map(() => '200 change'),
    );
    for (const reply of replies) {
      expect((JSON.parse(reply.body) as ChangesBody).changes.map((c) => c.id)).toEqual([id]);
    }
  }

  it(`parks ${POLLS} held polls on a bounded number of timers, not one each`, async () => {
    const cursor = await headCursor(40);
    const before = timers();
    const started = Date.now();
    const polls = Array.from(
      { length: POLLS },
      () => send(`${items.url}/runs/40/changes?since=${cursor}&wait=30`, agent).reply,
    );
    await waitFor(() => held.size === POLLS, { timeoutMs: 20_000, message: 'not all held' });
    // One timer per 100 ms deadline bucket the polls' deadlines fall into, and a few unrelated
    // ones (the reader's sleeps): bounded by how long the polls took to arrive, not by how many.
    const spreadMs = Date.now() - started;
    expect(timers() - before).toBeLessThanOrEqual(Math.ceil(spreadMs / 100) + 5);
    expect(held.timers).toBeLessThanOrEqual(Math.ceil(spreadMs / 100) + 1);

    const id = await insert(40);
    expectChange(await Promise.all(polls), id);
    expect(held.size).toBe(0);
    expect(held.timers).toBe(0);
  });

  it(`wakes ${POLLS} held polls of one (feed, cursor) with one index read`, async () => {
    const cursor = await headCursor(41);
    const polls = Array.from(
      { length: POLLS },
      () => send(`${items.url}/runs/41/changes?since=${cursor}&wait=30`, agent).reply,
    );
    await waitFor(() => held.size === POLLS, { timeoutMs: 20_000, message: 'not all held' });
    const readsBefore = reads.reads.get('items:41') ?? 0;
    const id = await insert(41);
    expectChange(await Promise.all(polls), id);
    expect((reads.reads.get('items:41') ?? 0) - readsBefore).toBe(1);
  });

  it('a poll woken while its first read was in flight joins the read its group started after the wake', async () => {
    const events = items.app.get(PollingEvents);
    let wakes = 0;
    const subscription = events.events$.subscribe((e) => {
      if (e.type === 'wake' && e.reason === 'change') wakes++;
    });
    try {
      const cursor = await headCursor(42);
      const waiting = send(`${items.url}/runs/42/changes?since=${cursor}&wait=30`, agent).reply;
      await waitFor(() => held.size === 1, { message: 'the first poll was not held' });
      const start = reads.reads.get('items:42') ?? 0;
      const count = () => (reads.reads.get('items:42') ?? 0) - start;

      // The second poll is registered, and its first read (before the change) is kept back.
      reads.hold = true;
      const reading = send(`${items.url}/runs/42/changes?since=${cursor}&wait=30`, agent).reply;
      await waitFor(() => count() === 1, { message: "the second poll's first read" });
      const id = await insert(42);
      // The change wakes the waiting poll, which reads again (kept back too), and latches the
      // reading one.
      await waitFor(() => count() === 2, { message: "the woken poll's read" });
      const groupRead = reads.held.pop()!;
      reads.hold = false;
      reads.release(); // the second poll's first read: nothing yet; it takes its latched wake
      await waitFor(() => wakes === 2, { message: 'the second poll did not take its wake' });
      await new Promise((resolve) => setImmediate(resolve));
      // It shares the group's read (started after the wake) instead of reading again.
      expect(count()).toBe(2);
      groupRead();
      expectChange(await Promise.all([waiting, reading]), id);
      expect(count()).toBe(2);
    } finally {
      subscription.unsubscribe();
      reads.hold = false;
      reads.release();
    }
  });
});
