import { Agent } from 'node:http';
import { Client } from 'pg';
import { type PollingModuleOptions } from '../../src';
import { HeldRequests } from '../../src/http-polling/held-requests.service';
import { ResponseAggregator } from '../../src/aggregation/response-aggregator.service';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { createItemsTable } from '../support/polling-app';
import { send, type Reply } from '../support/http-get';
import { waitFor } from '../support/wait-for';
import { startItemsApp, type ItemsApp } from '../fixtures/items-app';
import { probeFailures } from '../fixtures/aggregation-probe.controller';

interface ProbeBody {
  madeFor: string | null;
  changes: { id: string }[];
  cursor: string;
}

describe('response aggregator', () => {
  let db: TestDatabase;
  let writer: Client;
  const agent = new Agent({ keepAlive: true, maxSockets: Infinity });

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    writer = new Client(db.config);
    await writer.connect();
  });

  afterAll(async () => {
    agent.destroy();
    await writer?.end();
    await db?.drop();
  });

  async function withApp(
    options: Partial<PollingModuleOptions>,
    body: (items: ItemsApp) => Promise<void>,
  ) {
    const items = await startItemsApp(db.url, {
      http: { maxHeldPerClient: 10_000 },
      // The app names its callers' scope: here, their bearer token.
      aggregator: { scope: (req) => req.headers.authorization || null },
      ...options,
    });
    try {
      await body(items);
    } finally {
      items.app.getHttpServer().closeAllConnections();
      await items.close();
    }
  }

  async function head(items: ItemsApp, run: number): Promise<string> {
    const res = await send(`${items.url}/probe/${run}/changes`, agent).reply;
    return (JSON.parse(res.body) as ProbeBody).cursor;
  }

  /** Holds `count` identical long polls per caller, then commits one change and collects replies. */
  async function wakeMany(
    items: ItemsApp,
    run: number,
    /** A bearer token, or the request headers of one caller. */
    callers: (string | Record<string, string>)[],
    count: number,
    beforeCommit: () => void = () => undefined,
  ) {
    const since = await head(items, run);
    const held = items.app.get(HeldRequests);
    const before = held.size;
    const replies: Promise<Reply>[] = [];
    for (const caller of callers) {
      for (let i = 0; i < count; i++) {
        const url = `${items.url}/probe/${run}/changes?since=${since}&wait=20`;
        const headers = typeof caller === 'string' ? { authorization: caller } : caller;
        replies.push(send(url, agent, headers).reply);
      }
    }
    await waitFor(() => held.size === before + callers.length * count, {
      timeoutMs: 15_000,
      message: 'all polls held',
    });
    beforeCommit();
    const runsBefore = items.runs.count;
    const queriesBefore = items.queries.count;
    const { rows } = await writer.query(
      'INSERT INTO items (run, body) VALUES ($1, $2) RETURNING id',
      [run, 'wake them all'],
    );
    const answers = await Promise.all(replies);
    return {
      id: rows[0].id as string,
      answers,
      runs: items.runs.count - runsBefore,
      queries: items.queries.count - queriesBefore,
    };
  }

  it('1,000 long polls with the same cursor woken by one change: 1 handler run, 1 row query', async () => {
    await withApp({}, async (items) => {
      const result = await wakeMany(items, 1, ['Bearer same-user'], 1000);
      expect(result.answers.every((a) => a.status === 200)).toBe(true);
      for (const a of result.answers) {
        expect((JSON.parse(a.body) as ProbeBody).changes.map((c) => c.id)).toEqual([result.id]);
      }
      expect(result.runs).toBe(1);
      expect(result.queries).toBe(1);
      expect(items.app.get(ResponseAggregator).joined).toBeGreaterThanOrEqual(999);
    });
  });

  it('without the aggregator the same wake-up costs 1,000 runs and 1,000 row queries', async () => {
    await withApp({ aggregator: { enabled: false } }, async (items) => {
      const result = await wakeMany(items, 2, ['Bearer same-user'], 1000);
      expect(result.answers.every((a) => a.status === 200)).toBe(true);
      expect(result.runs).toBe(1000);
      expect(result.queries).toBe(1000);
    });
  });

  it('never gives one scope the response made for another, under the same cursor at the same moment', async () => {
    await withApp({}, async (items) => {
      const result = await wakeMany(items, 3, ['Bearer alice', 'Bearer bob'], 50);
      const madeFor = result.answers.map((a) => (JSON.parse(a.body) as ProbeBody).madeFor);
      expect(madeFor.slice(0, 50).every((m) => m === 'Bearer alice')).toBe(true);
      expect(madeFor.slice(50).every((m) => m === 'Bearer bob')).toBe(true);
      expect(result.runs).toBe(2);
    });
  });

  it('shares nothing between anonymous callers (no credentials)', async () => {
    await withApp({}, async (items) => {
      const result = await wakeMany(items, 4, [''], 20);
      expect(result.runs).toBe(20);
    });
  });

  it('without a scope function shares nothing, even behind a gateway with one shared token', async () => {
    await withApp({ aggregator: {} }, async (items) => {
      const gateway = (user: string) => ({ authorization: 'Bearer gateway-token', 'x-user': user });
      const result = await wakeMany(items, 7, [gateway('alice'), gateway('bob')], 10);
      const madeFor = result.answers.map((a) => (JSON.parse(a.body) as ProbeBody).madeFor);
      expect(madeFor).toEqual([...Array(10).fill('alice'), ...Array(10).fill('bob')]);
      expect(result.runs).toBe(20);
      expect(items.app.get(ResponseAggregator).joined).toBe(0);
    });
  });

  it('uses the app scope function when given one', async () => {
    await withApp(
      { aggregator: { scope: (req) => String(req.headers['x-tenant'] ?? '') || null } },
      async (items) => {
        const since = await head(items, 5);
        const url = `${items.url}/probe/5/poll?since=${since}`;
        const [a, b] = await Promise.all([
          send(url, agent, { 'x-tenant': 't1', authorization: 'Bearer a' }).reply,
          send(url, agent, { 'x-tenant': 't1', authorization: 'Bearer b' }).reply,
        ]);
        // Same tenant → same scope: the second is answered by the first run (within linger).
        expect(JSON.parse(a.body).madeFor).toBe(JSON.parse(b.body).madeFor);
      },
    );
  });

  it('shares an error with the waiters of that run but does not cache it', async () => {
    await withApp({}, async (items) => {
      const failed = await wakeMany(items, 6, ['Bearer same-user'], 10, () => {
        probeFailures.remaining = 1;
      });
      expect(failed.answers.map((a) => a.status)).toEqual(Array(10).fill(418));
      expect(failed.runs).toBe(1);
      // An identical request right after (well within lingerMs) runs the handler again:
      // the error was not remembered.
      const since = await head(items, 6);
      const url = `${items.url}/probe/6/poll?since=${since}`;
      probeFailures.remaining = 1;
      const auth = { authorization: 'Bearer same-user' };
      const first = await send(url, agent, auth).reply;
      expect(first.status).toBe(418);
      const runsBefore = items.runs.count;
      const retry = await send(url, agent, auth).reply;
      expect(items.runs.count).toBe(runsBefore + 1);
      expect(retry.status).toBe(200);
    });
  });
});
