import { Client } from 'pg';
import { startItemsFixture, type ItemsApp, type ItemsFixture } from '../fixtures/items-app';

interface ChangesBody {
  changes: { id: string; op: string; row?: { id: string; run: number; body: string } }[];
  cursor: string;
  reason: string;
}
const BACKSTOP_MS = 30_000;
const json = async (res: Response) => (await res.json()) as ChangesBody;

describe('@LongPoll over HTTP', () => {
  let fixture: ItemsFixture;
  let items: ItemsApp;
  let writer: Client;

  beforeAll(async () => {
    // A backstop read far away: a poll answered within seconds was woken by the commit's NOTIFY.
    fixture = await startItemsFixture({ reader: { backstopMs: BACKSTOP_MS } });
    ({ items, writer } = fixture);
  });

  afterAll(() => fixture?.close());

  async function headCursor(run: number): Promise<string> {
    const res = await fetch(`${items.url}/runs/${run}/changes`);
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body).toEqual({
      changes: [],
      cursor: res.headers.get('poll-cursor'),
      reason: 'immediate',
    });
    return body.cursor;
  }

  it('answers a held poll on the commit (its NOTIFY, not a later read), with the changed row', async () => {
    const cursor = await headCursor(1);
    const poll = fetch(`${items.url}/runs/1/changes?since=${cursor}&wait=10`);
    await new Promise((r) => setTimeout(r, 200)); // the request is held by now
    const { rows } = await writer.query(
      "INSERT INTO items (run, body) VALUES (1, 'hello') RETURNING id",
    );
    const committedAt = performance.now();
    const res = await poll;
    const latencyMs = performance.now() - committedAt;
    expect(res.status).toBe(200);
    // Typically ~10 ms; a bound far below the backstop holds on a loaded machine too.
    expect(latencyMs).toBeLessThan(BACKSTOP_MS / 10);
    const body = await json(res);
    expect(body.reason).toBe('change');
    expect(body.changes).toEqual([
      { id: rows[0].id, op: 'upsert', row: { id: rows[0].id, run: 1, body: 'hello' } },
    ]);
    expect(res.headers.get('poll-cursor')).toBe(body.cursor);
    expect(res.headers.get('etag')).toBe(`"${body.cursor}"`);
    expect(res.headers.get('cache-control')).toBe('private, no-cache');
    expect(Number(res.headers.get('poll-interval'))).toBeGreaterThanOrEqual(1);
  });

  it('does not wake a poll held on another partition; it times out with 204 and its cursor', async () => {
    const cursor = await headCursor(2);
    const started = Date.now();
    const poll = fetch(`${items.url}/runs/2/changes?since=${cursor}&wait=1`);
    await new Promise((r) => setTimeout(r, 100));
    await writer.query("INSERT INTO items (run, body) VALUES (3, 'other partition')");
    const res = await poll;
    expect(res.status).toBe(204);
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(res.headers.get('poll-cursor')).toBe(cursor);
    expect(res.headers.get('poll-wake')).toBe('timeout');
  });

  it('reports a delete as op delete, and Prefer: wait works like ?wait=', async () => {
    const start = await headCursor(4);
    const { rows } = await writer.query(
      "INSERT INTO items (run, body) VALUES (4, 'doomed') RETURNING id",
    );
    const inserted = await fetch(`${items.url}/runs/4/changes?since=${start}&wait=5`);
    const { cursor, changes } = await json(inserted);
    expect(changes).toEqual([
      { id: rows[0].id, op: 'upsert', row: { id: rows[0].id, run: 4, body: 'doomed' } },
    ]);
    const poll = fetch(`${items.url}/runs/4/changes?since=${cursor}`, {
      headers: { Prefer: 'wait=5' },
    });
    await new Promise((r) => setTimeout(r, 100));
    await writer.query('DELETE FROM items WHERE id = $1', [rows[0].id]);
    const res = await poll;
    expect(res.status).toBe(200);
    expect(res.headers.get('preference-applied')).toBe('wait=5');
    expect((await json(res)).changes).toEqual([{ id: rows[0].id, op: 'delete' }]);
  });

  it('answers at once when changes already exist after the cursor', async () => {
    const cursor = await headCursor(5);
    await writer.query("INSERT INTO items (run, body) VALUES (5, 'a'), (5, 'b')");
    await new Promise((r) => setTimeout(r, 100));
    const res = await fetch(`${items.url}/runs/5/changes?since=${cursor}&wait=30`);
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.reason).toBe('immediate');
    expect(body.changes.map((c) => c.row?.body)).toEqual(['a', 'b']);
  });
});
