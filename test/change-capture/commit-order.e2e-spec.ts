import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { waitFor } from '../support/wait-for';
import {
  createItemsTable,
  indexedChanges,
  itemsOptions,
  loggedChanges,
  startPollingApp,
  type PollingApp,
} from '../support/polling-app';

describe('commit-safe reading (out-of-order commits)', () => {
  let db: TestDatabase;
  let polling: PollingApp;
  const clients: Client[] = [];

  async function connect(): Promise<Client> {
    const client = new Client(db.config);
    await client.connect();
    clients.push(client);
    return client;
  }

  async function insert(client: Client, run: number, body: string): Promise<string> {
    const { rows } = await client.query(
      'INSERT INTO items (run, body) VALUES ($1, $2) RETURNING id',
      [run, body],
    );
    return rows[0].id;
  }

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    polling = await startPollingApp(itemsOptions(db));
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.end()));
    await polling?.close();
    await db?.drop();
  });

  it('delivers a change that commits after a later one, in (xid, id) order, skipping nothing', async () => {
    const t1 = await connect();
    const t2 = await connect();
    await t1.query('BEGIN');
    const early = await insert(t1, 1, 'T1 writes first: lower id, lower xid');
    await t2.query('BEGIN');
    const late = await insert(t2, 1, 'T2 writes second and commits first');
    await t2.query('COMMIT');

    // T2 is committed but T1 still holds the horizon: the reader must not move past T1,
    // and it says so in its lag figure.
    await waitFor(() => polling.reader.lag.heldBackRows >= 1, {
      message: 'lag shows T2 held back',
    });
    expect(polling.reader.lag.stalledSince).not.toBeNull();
    expect(await indexedChanges(polling.index, 'items:1')).toEqual([]);

    await t1.query('COMMIT');
    await waitFor(async () => (await indexedChanges(polling.index, 'items:1')).length === 2, {
      message: 'both changes in the index',
    });
    const indexed = await indexedChanges(polling.index, 'items:1');
    expect(indexed.map((c) => c.resourceId)).toEqual([early, late]);
    expect(indexed[1].position).toBe(indexed[0].position + 1);
  });

  it('orders a transaction with a higher xid but a lower id by xid', async () => {
    const a = await connect();
    const b = await connect();
    await a.query('BEGIN');
    await b.query('BEGIN');
    // b takes its xid first (lower xid), a takes the lower id first.
    await b.query('SELECT pg_current_xact_id()');
    const lowId = await insert(a, 2, 'lower id, higher xid');
    const highId = await insert(b, 2, 'higher id, lower xid');
    expect(BigInt(lowId)).toBeLessThan(BigInt(highId));
    await a.query('COMMIT');
    await b.query('COMMIT');
    await waitFor(async () => (await indexedChanges(polling.index, 'items:2')).length === 2, {
      message: 'both changes in the index',
    });
    const indexed = await indexedChanges(polling.index, 'items:2');
    expect(indexed.map((c) => c.resourceId)).toEqual([highId, lowId]);
    expect(indexed.map((c) => c.resourceId)).toEqual(await loggedChanges(a, 'items:2'));
  });

  it('does not stall after rollbacks, and never shows rolled-back changes', async () => {
    const a = await connect();
    const b = await connect();
    await a.query('BEGIN');
    const rolledBack = await insert(a, 3, 'will roll back');
    await b.query('BEGIN');
    await insert(b, 3, 'also rolls back');
    const kept = await insert(await connect(), 3, 'autocommit between them');
    await a.query('ROLLBACK');
    await b.query('ROLLBACK');
    const after = await insert(a, 3, 'after the rollbacks');

    await waitFor(async () => (await indexedChanges(polling.index, 'items:3')).length === 2, {
      message: 'committed changes after rollbacks',
    });
    const ids = (await indexedChanges(polling.index, 'items:3')).map((c) => c.resourceId);
    expect(ids).toEqual([kept, after]);
    expect(ids).not.toContain(rolledBack);
  });

  it('captures updates and deletes, and a row that moves between partitions', async () => {
    const c = await connect();
    const id = await insert(c, 4, 'v1');
    await c.query('UPDATE items SET body = $2 WHERE id = $1', [id, 'v2']);
    await c.query('UPDATE items SET run = 5 WHERE id = $1', [id]);
    await waitFor(async () => (await indexedChanges(polling.index, 'items:5')).length === 1, {
      message: 'row arrives in its new partition',
    });
    const { rows } = await c.query(
      `SELECT feed, resource_id, op FROM polling_changes WHERE resource_id = $1 ORDER BY xid, id`,
      [id],
    );
    expect(rows.map((r) => `${r.op}:${r.feed}`)).toEqual([
      'u:items:4',
      'u:items:4',
      'u:items:5',
      'd:items:4',
    ]);
    // the old partition still lists the id (now as its delete), once
    expect((await indexedChanges(polling.index, 'items:4')).map((x) => x.resourceId)).toEqual([id]);
  });
});
