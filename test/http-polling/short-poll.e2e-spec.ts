import { Client } from 'pg';
import { waitFor } from '../support/wait-for';
import { startItemsFixture, type ItemsApp, type ItemsFixture } from '../fixtures/items-app';

interface ChangesBody {
  changes: { id: string; op: string; row?: { id: string; run: number; body: string } }[];
  cursor: string;
}

/** The headers DESIGN.md §3 puts on every poll response. */
function expectPollHeaders(res: Response): string {
  const cursor = res.headers.get('poll-cursor');
  expect(cursor).toEqual(expect.any(String));
  expect(res.headers.get('etag')).toBe(`"${cursor}"`);
  expect(res.headers.get('cache-control')).toBe('private, no-cache');
  const interval = Number(res.headers.get('poll-interval'));
  expect(Number.isInteger(interval)).toBe(true);
  expect(interval).toBeGreaterThanOrEqual(1);
  return cursor!;
}

describe('@Poll (short poll) over HTTP', () => {
  let fixture: ItemsFixture;
  let items: ItemsApp;
  let writer: Client;

  beforeAll(async () => {
    fixture = await startItemsFixture();
    ({ items, writer } = fixture);
  });

  afterAll(() => fixture?.close());

  const poll = (run: number, query = '', headers: Record<string, string> = {}) =>
    fetch(`${items.url}/runs/${run}/poll${query}`, { headers });

  async function headCursor(run: number): Promise<string> {
    const res = await poll(run);
    expect(res.status).toBe(200);
    const cursor = expectPollHeaders(res);
    expect((await res.json()) as ChangesBody).toEqual({ changes: [], cursor });
    return cursor;
  }

  it('answers a poll without since with 200 and the head cursor', async () => {
    const cursor = await headCursor(1);
    expect(cursor.split('.')).toHaveLength(3);
  });

  it('answers 304 for an unchanged feed without running the handler or querying Postgres', async () => {
    const cursor = await headCursor(2);
    const runs = items.runs.count;
    const queries = items.queries.count;
    const res = await poll(2, `?since=${cursor}`, { 'If-None-Match': `"${cursor}"` });
    expect(res.status).toBe(304);
    expect(await res.text()).toBe('');
    expect(expectPollHeaders(res)).toBe(cursor);
    expect(items.runs.count).toBe(runs);
    expect(items.queries.count).toBe(queries);

    // A list of tags and a weak tag match too (RFC 9110 weak comparison).
    const listed = await poll(2, `?since=${cursor}`, { 'If-None-Match': `"other", W/"${cursor}"` });
    expect(listed.status).toBe(304);
    expect(items.runs.count).toBe(runs);

    // Without If-None-Match the same poll runs the handler (200, no changes).
    const full = await poll(2, `?since=${cursor}`);
    expect(full.status).toBe(200);
    await full.arrayBuffer();
    expect(items.runs.count).toBe(runs + 1);
  });

  it('answers 200 with the change and a new ETag once the feed moved', async () => {
    const cursor = await headCursor(3);
    const { rows } = await writer.query(
      "INSERT INTO items (run, body) VALUES (3, 'fresh') RETURNING id",
    );
    await waitFor(
      async () => {
        const res = await poll(3, `?since=${cursor}`);
        return ((await res.json()) as ChangesBody).changes.length > 0;
      },
      { timeoutMs: 5000, intervalMs: 20, message: 'the insert never reached the feed' },
    );

    const runs = items.runs.count;
    const queries = items.queries.count;
    const res = await poll(3, `?since=${cursor}`, { 'If-None-Match': `"${cursor}"` });
    expect(res.status).toBe(200);
    const next = expectPollHeaders(res);
    expect(next).not.toBe(cursor);
    expect(res.headers.get('etag')).not.toBe(`"${cursor}"`);
    const body = (await res.json()) as ChangesBody;
    expect(body).toEqual({
      changes: [{ id: rows[0].id, op: 'upsert', row: { id: rows[0].id, run: 3, body: 'fresh' } }],
      cursor: next,
    });
    expect(items.runs.count).toBe(runs + 1);
    // The query counter does count: this handler run loaded the row through the DataSource.
    expect(items.queries.count).toBeGreaterThan(queries);

    // And the new cursor is not modified again.
    const again = await poll(3, `?since=${next}`, { 'If-None-Match': `"${next}"` });
    expect(again.status).toBe(304);
    expect(expectPollHeaders(again)).toBe(next);
  });

  it('ignores wait: a ?wait=10 short poll with no change answers at once', async () => {
    const cursor = await headCursor(4);
    const started = Date.now();
    const res = await poll(4, `?since=${cursor}&wait=10`);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(res.status).toBe(200);
    expect(expectPollHeaders(res)).toBe(cursor);
    expect((await res.json()) as ChangesBody).toEqual({ changes: [], cursor });

    const preferred = await poll(4, `?since=${cursor}`, { Prefer: 'wait=10' });
    expect(Date.now() - started).toBeLessThan(1000);
    expect(preferred.status).toBe(200);
    expect(preferred.headers.get('preference-applied')).toBeNull();
    await preferred.arrayBuffer();
  });

  it('answers a stale If-None-Match with 200 (not 304)', async () => {
    const cursor = await headCursor(5);
    const res = await poll(5, `?since=${cursor}`, { 'If-None-Match': '"something-else"' });
    expect(res.status).toBe(200);
    expect(expectPollHeaders(res)).toBe(cursor);
    await res.arrayBuffer();
  });
});
