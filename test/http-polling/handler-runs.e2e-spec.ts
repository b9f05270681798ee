import { startItemsFixture, type ItemsApp, type ItemsFixture } from '../fixtures/items-app';

/*
 * When the route's handler runs (README, "Put @LongPoll() / @Poll() on routes"): for every 200,
 * including the head and a short poll that found nothing (then with no changedIds), and never for
 * a 204, a 304 or while a long poll is held.
 */
describe('when a @LongPoll handler runs', () => {
  let fixture: ItemsFixture;
  let items: ItemsApp;

  beforeAll(async () => {
    fixture = await startItemsFixture();
    ({ items } = fixture);
  });

  afterAll(() => fixture?.close());

  async function get(query: string, headers: Record<string, string> = {}) {
    const before = items.runs.count;
    const res = await fetch(`${items.url}/runs/31/changes${query}`, { headers });
    const body = await res.text();
    return { status: res.status, body, ran: items.runs.count - before };
  }

  it('runs with no changedIds (and string ids otherwise) for the head and an unchanged short poll; not for 204 or 304', async () => {
    const head = await get('');
    expect(head).toMatchObject({ status: 200, ran: 1 });
    const cursor = (JSON.parse(head.body) as { cursor: string }).cursor;
    expect(JSON.parse(head.body)).toMatchObject({ changes: [], cursor });

    const shortPoll = await get(`?since=${cursor}&wait=0`);
    expect(shortPoll).toMatchObject({ status: 200, ran: 1 });
    expect(JSON.parse(shortPoll.body)).toMatchObject({ changes: [], cursor });

    expect(await get(`?since=${cursor}&wait=0`, { 'If-None-Match': `"${cursor}"` })).toEqual({
      status: 304,
      body: '',
      ran: 0,
    });
    expect(await get(`?since=${cursor}&wait=0.2`)).toEqual({ status: 204, body: '', ran: 0 });

    const { rows } = await fixture.writer.query<{ id: string }>(
      'INSERT INTO items (run, body) VALUES (31, $1) RETURNING id',
      ['x'],
    );
    const changed = await get(`?since=${cursor}&wait=5`);
    expect(changed).toMatchObject({ status: 200, ran: 1 });
    expect(typeof rows[0].id).toBe('string'); // pg returns bigint as text; the feed's ids too
    expect(JSON.parse(changed.body).changes).toEqual([
      expect.objectContaining({ id: rows[0].id, op: 'upsert' }),
    ]);
  });
});
