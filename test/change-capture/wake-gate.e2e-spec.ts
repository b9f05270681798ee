import { Client } from 'pg';
import { installChangeLogSql } from '../../src';
import { WakeGate } from '../../src/change-capture/wake-gate';
import { startItemsApp, type ItemsApp } from '../fixtures/items-app';
import { createItemsTable } from '../support/polling-app';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { TcpProxy } from '../support/tcp-proxy';
import { waitFor } from '../support/wait-for';

// Far above any NOTIFY delivery: a poll that takes this long was woken by the backstop read.
const BACKSTOP_MS = 8000;
const FAST_MS = 2000;

interface ChangesBody {
  changes: { id: string }[];
  cursor: string;
}

async function headCursor(app: ItemsApp, run: number): Promise<string> {
  const res = await fetch(`${app.url}/runs/${run}/changes`);
  return ((await res.json()) as ChangesBody).cursor;
}

/** Holds a long poll on `run` from `cursor`; resolves with the ids and when they arrived. */
async function heldPoll(app: ItemsApp, run: number, cursor: string) {
  const res = await fetch(`${app.url}/runs/${run}/changes?since=${cursor}&wait=20`);
  const arrivedAt = performance.now();
  const body = (await res.json()) as ChangesBody;
  return { ids: body.changes.map((c) => c.id), arrivedAt };
}

describe('wake gate: every idle reader wakes by NOTIFY (max_prepared_transactions = 0)', () => {
  let db: TestDatabase;
  let writer: Client;
  let apps: ItemsApp[] = [];
  let proxy: TcpProxy | null = null;

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    writer = new Client(db.config);
    await writer.connect();
    const { rows } = await writer.query("SELECT current_setting('max_prepared_transactions') AS v");
    expect(rows[0].v).toBe('0'); // the shared server's default; the 2PC case has its own spec
  });

  afterAll(async () => {
    await writer?.end();
    await Promise.all(apps.map((a) => a.close()));
    await proxy?.close();
    await db?.drop();
  });

  it('one idle reader: a write reaches a held poll well before the backstop', async () => {
    const app = await startItemsApp(db.url, { reader: { backstopMs: BACKSTOP_MS } });
    apps.push(app);
    for (let round = 0; round < 5; round++) {
      const cursor = await headCursor(app, 1);
      const poll = heldPoll(app, 1, cursor);
      await new Promise((r) => setTimeout(r, 300)); // the reader goes idle and arms
      const { rows } = await writer.query('INSERT INTO items (run) VALUES (1) RETURNING id');
      const committedAt = performance.now();
      const { ids, arrivedAt } = await poll;
      expect(ids).toEqual([rows[0].id]);
      expect(arrivedAt - committedAt).toBeLessThan(FAST_MS);
    }
    await app.close();
    apps = [];
  });

  it('two in-memory instances on one schema: a write reaches a held poll on each well before the backstop, every time', async () => {
    // The second instance talks to Postgres over a 40 ms link, so the two readers wake, disarm
    // and arm out of step (as instances on different hosts do), not in lockstep in one process.
    proxy = await TcpProxy.start(Number(new URL(db.url).port || 5432));
    proxy.latencyMs = 40;
    const far = new URL(db.url);
    far.port = String(proxy.port);
    apps = [
      await startItemsApp(db.url, { reader: { backstopMs: BACKSTOP_MS } }),
      await startItemsApp(far.toString(), { reader: { backstopMs: BACKSTOP_MS } }),
    ];
    const slowest: number[] = [];
    for (let round = 0; round < 12; round++) {
      const cursors = await Promise.all(apps.map((a) => headCursor(a, 2)));
      const polls = apps.map((a, i) => heldPoll(a, 2, cursors[i]));
      // Idle spells of different lengths: some writes land while the far reader is still awake.
      await new Promise((r) => setTimeout(r, (round * 37) % 150));
      const { rows } = await writer.query('INSERT INTO items (run) VALUES (2) RETURNING id');
      const committedAt = performance.now();
      const results = await Promise.all(polls);
      for (const { ids } of results) expect(ids).toEqual([rows[0].id]);
      slowest.push(Math.max(...results.map((r) => r.arrivedAt - committedAt)));
    }
    expect(Math.max(...slowest)).toBeLessThan(FAST_MS);
  });

  it('each reader sets only its own bit; a reader that died armed loses its bit at the next arm', async () => {
    await writer.query(installChangeLogSql('gate_bits'));
    const gate = async () =>
      (await writer.query('SELECT last_value::text AS v FROM gate_bits.polling_wake_gate')).rows[0]
        .v as string;
    const [a, b] = [new Client(db.config), new Client(db.config)];
    await a.connect();
    await b.connect();
    const gateA = await WakeGate.open(a, 'gate_bits');
    const gateB = await WakeGate.open(b, 'gate_bits');
    await gateA.arm(a);
    await gateB.arm(b);
    expect(await gate()).toBe('3');
    await gateA.disarm(a); // A wakes: B stays armed
    expect(await gate()).toBe('2');
    await b.end(); // B dies armed
    // The server ends B's session (and its slot lock) shortly after the socket closes.
    await waitFor(async () => (await gateA.arm(a), (await gate()) === '1'), {
      message: "A's arm cleared the dead reader's bit",
    });
    await a.end();
  });
});
