import { Agent, get, type ClientRequest } from 'node:http';
import type { Server } from 'node:net';
import { Client } from 'pg';
import { ChangeBus } from '../../src/change-bus/change-bus.service';
import { HeldRequests } from '../../src/http-polling/held-requests.service';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { createItemsTable } from '../support/polling-app';
import { waitFor } from '../support/wait-for';
import { startItemsApp, type ItemsApp } from '../fixtures/items-app';
import { testPlatform } from '../support/http-platform';

interface ChangesBody {
  changes: { id: string; op: string }[];
  cursor: string;
}

interface Reply {
  status: number;
  body: string;
}

const WAVES = 10;
const WAVE_SIZE = 1000;
const RUNS = [100, 101, 102, 103, 104, 105, 106, 107, 108, 109];

/** A GET over node:http; `closed` settles when the client socket is gone, whatever happened. */
function send(url: string, agent: Agent) {
  let request!: ClientRequest;
  const reply = new Promise<Reply>((resolve, reject) => {
    request = get(url, { agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    request.on('error', reject);
  });
  const closed = new Promise<void>((resolve) => request.once('close', () => resolve()));
  return { request, reply, closed };
}

/** Active handles of this process by type, as Node reports them (e.g. Timeout, TCPSocketWrap). */
function activeResources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const type of process.getActiveResourcesInfo()) counts[type] = (counts[type] ?? 0) + 1;
  return counts;
}

const timeouts = () => activeResources()['Timeout'] ?? 0;
const sockets = () => activeResources()['TCPSocketWrap'] ?? 0;

/** Listeners on the server, by event: a poll must not leave one behind. */
function serverListeners(server: Server): Record<string, number> {
  return Object.fromEntries(server.eventNames().map((e) => [String(e), server.listenerCount(e)]));
}

function connections(server: Server): Promise<number> {
  return new Promise((resolve, reject) =>
    server.getConnections((error, count) => (error ? reject(error) : resolve(count))),
  );
}

describe(`aborted long polls (${testPlatform()})`, () => {
  let db: TestDatabase;
  let items: ItemsApp;
  let writer: Client;
  let held: HeldRequests;
  let bus: ChangeBus;
  let server: Server;
  // A fresh connection per request: an aborted poll's socket is really closed on both ends.
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity });

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    items = await startItemsApp(db.url, { http: { maxHeldPerClient: 100_000 } });
    held = items.app.get(HeldRequests);
    bus = items.app.get(ChangeBus);
    server = items.app.getHttpServer() as Server;
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
    const res = await send(`${items.url}/runs/${run}/changes`, agent).reply;
    expect(res.status).toBe(200);
    return (JSON.parse(res.body) as ChangesBody).cursor;
  }

  it('10,000 polls aborted by their clients leave no waiter, subscription, timer or socket', async () => {
    const cursors = new Map<number, string>();
    for (const run of RUNS) cursors.set(run, await headCursor(run));
    await waitFor(async () => (await connections(server)) === 0, {
      message: 'the head-cursor connections stayed open',
    });

    const baseline = {
      held: held.size,
      feeds: held.feedCount,
      subscribers: bus.subscriberCount,
      timeouts: timeouts(),
      sockets: sockets(),
      listeners: serverListeners(server),
    };
    expect(baseline.held).toBe(0);
    expect(baseline.feeds).toBe(0);

    for (let wave = 0; wave < WAVES; wave++) {
      const polls = Array.from({ length: WAVE_SIZE }, (_, i) => {
        const run = RUNS[i % RUNS.length];
        const poll = send(
          `${items.url}/runs/${run}/changes?since=${cursors.get(run)}&wait=30`,
          agent,
        );
        poll.reply.catch(() => undefined); // aborted on purpose: ECONNRESET / socket hang up
        return poll;
      });
      await waitFor(() => held.size === WAVE_SIZE, {
        timeoutMs: 20_000,
        message: `wave ${wave}: ${held.size} of ${WAVE_SIZE} polls held`,
      });
      expect(held.feedCount).toBe(RUNS.length);
      // The held requests' deadlines run on shared bucket timers (one per 100 ms of deadlines),
      // which the measurement sees, so it would see a leak: at least one while they wait.
      if (wave === 0) {
        expect(held.timers).toBeGreaterThanOrEqual(1);
        expect(timeouts()).toBeGreaterThanOrEqual(baseline.timeouts + held.timers - 3);
      }

      for (const poll of polls) poll.request.destroy();
      await Promise.all(polls.map((poll) => poll.closed));
      await waitFor(() => held.size === 0, {
        message: `wave ${wave}: ${held.size} polls still held after their clients left`,
      });
      const settled = await Promise.allSettled(polls.map((poll) => poll.reply));
      expect(settled.filter((s) => s.status === 'fulfilled')).toHaveLength(0);
    }

    expect(held.size).toBe(0);
    expect(held.feedCount).toBe(0);
    expect(held.timers).toBe(0);
    expect(bus.subscriberCount).toBe(baseline.subscribers);
    expect(serverListeners(server)).toEqual(baseline.listeners);
    await waitFor(async () => (await connections(server)) === 0, {
      message: 'the server kept aborted connections open',
    });
    // A few unrelated timers may come and go (the reader's backstop sleep), not thousands.
    await waitFor(() => timeouts() <= baseline.timeouts + 3, {
      message: `active timers: ${timeouts()}, baseline ${baseline.timeouts}`,
    });
    await waitFor(() => sockets() <= baseline.sockets + 2, {
      message: `active sockets: ${sockets()}, baseline ${baseline.sockets}`,
    });

    // And the server still serves a normal long poll.
    const poll = send(`${items.url}/runs/100/changes?since=${cursors.get(100)}&wait=10`, agent);
    await waitFor(() => held.size === 1, { message: 'the final poll was not held' });
    const { rows } = await writer.query(
      "INSERT INTO items (run, body) VALUES (100, 'after the storm') RETURNING id",
    );
    const res = await poll.reply;
    expect(res.status).toBe(200);
    expect((JSON.parse(res.body) as ChangesBody).changes).toEqual([
      expect.objectContaining({ id: rows[0].id, op: 'upsert' }),
    ]);
    await waitFor(() => held.size === 0);
  });
});
