import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { createItemsTable } from '../support/polling-app';
import { startItemsApp, type ItemsApp } from '../fixtures/items-app';

interface ItemRow {
  id: string;
  body: string | null;
}
interface ListBody {
  items: ItemRow[];
  nextCursor: string | null;
  hasMore: boolean;
  feedCursor: string;
}
interface ChangesBody {
  changes: ({ id: string; op: 'upsert'; row: ItemRow } | { id: string; op: 'delete' })[];
  cursor: string;
}

/**
 * The list endpoint reads the feed head before its page query (Poll-Cursor): a client that pages
 * through the snapshot while others write, then follows the feed from that cursor, ends with
 * exactly the table's rows.
 */
describe('snapshot pages, then the feed: nothing missed', () => {
  let db: TestDatabase;
  let items: ItemsApp;
  let writer: Client;

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    writer = new Client(db.config);
    await writer.connect();
    await writer.query(
      `INSERT INTO items (run, body) SELECT 9, 'v0' FROM generate_series(1, 2000)`,
    );
    items = await startItemsApp(db.url);
  });

  afterAll(async () => {
    await writer?.end();
    await items?.close();
    await db?.drop();
  });

  it('ends with the table exactly, although rows changed while it paged', async () => {
    let writing = true;
    const churn = (async () => {
      for (let i = 0; writing; i++) {
        await writer.query(`INSERT INTO items (run, body) VALUES (9, $1)`, [`new ${i}`]);
        await writer.query(
          `UPDATE items SET body = $1 WHERE id = (SELECT id FROM items WHERE run = 9 ORDER BY random() LIMIT 1)`,
          [`changed ${i}`],
        );
        await writer.query(
          `DELETE FROM items WHERE id = (SELECT id FROM items WHERE run = 9 ORDER BY random() LIMIT 1)`,
        );
      }
    })();

    const client = new Map<string, string | null>();
    let followFrom: string | null = null;
    let after: string | null = null;
    for (;;) {
      const res = await fetch(
        `${items.url}/runs/9/items?limit=50${after ? `&after=${after}` : ''}`,
      );
      expect(res.status).toBe(200);
      const page = (await res.json()) as ListBody;
      expect(res.headers.get('poll-cursor')).toBe(page.feedCursor);
      followFrom ??= page.feedCursor; // the head read before the first page's query
      for (const row of page.items) client.set(row.id, row.body);
      if (!page.hasMore) break;
      after = page.nextCursor;
    }
    writing = false;
    await churn;

    // Follow the feed until it has nothing more to say.
    let since = followFrom!;
    for (let rounds = 0; rounds < 100; rounds++) {
      const res = await fetch(`${items.url}/runs/9/changes?since=${since}&wait=1`);
      if (res.status === 204) break;
      expect(res.status).toBe(200);
      const body = (await res.json()) as ChangesBody;
      for (const change of body.changes) {
        if (change.op === 'delete') client.delete(change.id);
        else client.set(change.id, change.row.body);
      }
      since = body.cursor;
    }

    const { rows } = await writer.query('SELECT id::text, body FROM items WHERE run = 9');
    const table = new Map(rows.map((r) => [r.id as string, r.body as string | null]));
    expect(client.size).toBe(table.size);
    expect(new Map([...client].sort())).toEqual(new Map([...table].sort()));
  });
});
