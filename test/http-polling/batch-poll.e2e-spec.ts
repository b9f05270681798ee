import { Client } from 'pg';
import { startItemsFixture, type ItemsApp, type ItemsFixture } from '../fixtures/items-app';

interface FeedAnswer {
  status: number;
  cursor?: string;
  body?: { changes?: { id: string; op: string }[]; ids?: string[]; cursor?: string };
  message?: string;
}
interface BatchBody {
  feeds: Record<string, FeedAnswer>;
}
interface ErrorBody {
  statusCode: number;
  message: string;
}

describe('POST /poll: one held request for several feeds', () => {
  let fixture: ItemsFixture;
  let items: ItemsApp;
  let writer: Client;

  beforeAll(async () => {
    fixture = await startItemsFixture();
    ({ items, writer } = fixture);
  });

  afterAll(() => fixture?.close());

  const batch = (body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${items.url}/poll`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });

  async function startCursors(...keys: string[]): Promise<Record<string, string>> {
    const res = await batch({ feeds: Object.fromEntries(keys.map((k) => [k, null])) });
    expect(res.status).toBe(200);
    expect(res.headers.get('poll-wake')).toBe('immediate');
    const body = (await res.json()) as BatchBody;
    return Object.fromEntries(keys.map((k) => [k, body.feeds[k].cursor!]));
  }

  it('starts from the head with null cursors, then returns only the feed that changed', async () => {
    const cursors = await startCursors('/runs/1/changes', '/runs/2/changes');
    const poll = batch({ feeds: cursors, wait: 10 });
    await new Promise((r) => setTimeout(r, 150));
    const { rows } = await writer.query(
      "INSERT INTO items (run, body) VALUES (2, 'b') RETURNING id",
    );
    const res = await poll;
    expect(res.status).toBe(200);
    expect(res.headers.get('poll-wake')).toBe('change');
    const body = (await res.json()) as BatchBody;
    expect(Object.keys(body.feeds)).toEqual(['/runs/2/changes']);
    const answer = body.feeds['/runs/2/changes'];
    expect(answer.status).toBe(200);
    expect(answer.body?.changes?.map((c) => c.id)).toEqual([rows[0].id]);
    expect(answer.cursor).toBe(answer.body?.cursor);
    expect(answer.cursor).not.toBe(cursors['/runs/2/changes']);
  });

  it('answers 204 when the wait elapses without a change', async () => {
    const cursors = await startCursors('/runs/3/changes');
    const res = await batch({ feeds: cursors, wait: 0.3 });
    expect(res.status).toBe(204);
    expect(res.headers.get('poll-wake')).toBe('timeout');
  });

  it("applies each feed route's guards before holding", async () => {
    const denied = await batch({ feeds: { '/guarded/4/changes': null } });
    expect(denied.status).toBe(403);
    const cursors = await startCursors('/runs/4/changes');
    const allowedStart = await batch(
      { feeds: { '/guarded/4/changes': null } },
      { 'x-allow': 'yes' },
    );
    const guardedCursor = ((await allowedStart.json()) as BatchBody).feeds['/guarded/4/changes']
      .cursor!;
    const poll = batch(
      { feeds: { '/guarded/4/changes': guardedCursor, ...cursors }, wait: 10 },
      { 'x-allow': 'yes' },
    );
    await new Promise((r) => setTimeout(r, 150));
    const { rows } = await writer.query(
      "INSERT INTO items (run, body) VALUES (4, 'g') RETURNING id",
    );
    const body = (await (await poll).json()) as BatchBody;
    expect(body.feeds['/guarded/4/changes'].body?.ids).toEqual([rows[0].id]);
    expect(body.feeds['/runs/4/changes'].status).toBe(200);
  });

  it.each([
    ['an unknown feed', { feeds: { '/nope/1/changes': null } }, 400, /unknown feed/],
    [
      'more feeds than allowed',
      {
        feeds: {
          '/runs/1/changes': null,
          '/runs/2/changes': null,
          '/runs/3/changes': null,
          '/runs/4/changes': null,
        },
      },
      400,
      /maximum is 3/,
    ],
    ['no feeds', { feeds: {} }, 400, /at least one feed/],
    ['an array body', [1, 2], 400, /JSON object/],
    ['a bad cursor', { feeds: { '/runs/1/changes': 'x' } }, 400, /not issued by this feed/],
    ['a negative wait', { feeds: { '/runs/1/changes': null }, wait: -1 }, 400, /wait must be/],
    ['a string wait', { feeds: { '/runs/1/changes': null }, wait: '5' }, 400, /wait must be/],
    ['an unknown field', { feeds: { '/runs/1/changes': null }, extra: 1 }, 400, /unknown field/],
    ['a body that is not JSON', '{"feeds":', 400, /./],
  ])('rejects %s with a JSON 4xx', async (_name, body, status, message) => {
    const res = await batch(body);
    expect(res.status).toBe(status);
    const error = (await res.json()) as ErrorBody;
    expect(error.statusCode).toBe(status);
    expect(error.message).toMatch(message);
  });

  it('rejects a 10 MB body with a JSON 413 and keeps serving', async () => {
    const huge = JSON.stringify({
      feeds: { '/runs/1/changes': null },
      pad: 'x'.repeat(10 * 1024 * 1024),
    });
    const res = await batch(huge);
    expect(res.status).toBe(413);
    expect(((await res.json()) as ErrorBody).statusCode).toBe(413);
    const ok = await batch({ feeds: { '/runs/1/changes': null } });
    expect(ok.status).toBe(200);
  });
});
