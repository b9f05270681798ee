import { Client } from 'pg';
import { startExampleOnFreshDatabase, type RunningExample } from '../support/example-app';

const USER1 = { authorization: 'Bearer key-1' };
const USER2 = { authorization: 'Bearer key-2' };

interface MessageRow {
  id: string;
  channel: string;
  author: string;
  body: string;
}
interface Changes {
  changes: { id: string; op: string; row?: MessageRow }[];
  cursor: string;
}
interface TaskBody {
  task: { id: string; status: string; result: string | null; owner: string };
  cursor: string;
}

describe('example app', () => {
  let run: RunningExample;
  let psql: Client;

  beforeAll(async () => {
    run = await startExampleOnFreshDatabase();
    psql = new Client(run.db.config);
    await psql.connect();
  });

  afterAll(async () => {
    await psql?.end();
    await run?.close();
  });

  const call = (path: string, init: RequestInit & { headers?: Record<string, string> } = {}) =>
    fetch(`${run.url}${path}`, init);
  const json = async <T>(res: Response) => (await res.json()) as T;
  const post = (path: string, body: unknown, headers = USER1) =>
    call(path, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  async function head(path: string, headers = USER1): Promise<string> {
    const res = await call(path, { headers });
    expect(res.status).toBe(200);
    return res.headers.get('poll-cursor')!;
  }

  it('delivers a plain SQL insert (defaults for the rest) through the long poll', async () => {
    const since = await head('/channels/general/changes');
    const poll = call(`/channels/general/changes?since=${since}&wait=10`, { headers: USER1 });
    await new Promise((r) => setTimeout(r, 100));
    await psql.query(
      "INSERT INTO messages (channel, author, body) VALUES ('general', 'psql', 'hi')",
    );
    const res = await poll;
    expect(res.status).toBe(200);
    const body = await json<Changes>(res);
    expect(body.changes).toHaveLength(1);
    expect(body.changes[0]).toMatchObject({
      op: 'upsert',
      row: { author: 'psql', body: 'hi', channel: 'general' },
    });
  });

  it('posts, edits and deletes messages; the feed reports each; only the author may change one', async () => {
    const since = await head('/channels/dev/changes');
    const created = await post('/channels/dev/messages', { body: 'first' });
    expect(created.status).toBe(201);
    const message = await json<MessageRow>(created);
    expect(message).toMatchObject({ channel: 'dev', author: 'user1', body: 'first' });

    const patch = (headers: Record<string, string>) =>
      call(`/messages/${message.id}`, {
        method: 'PATCH',
        headers: { ...headers, 'content-type': 'application/json' },
        body: JSON.stringify({ body: 'edited' }),
      });
    expect((await patch(USER2)).status).toBe(403);
    expect((await patch(USER1)).status).toBe(200);

    const changes = await json<Changes>(
      await call(`/channels/dev/changes?since=${since}&wait=5`, { headers: USER2 }),
    );
    expect(changes.changes).toEqual([
      { id: message.id, op: 'upsert', row: expect.objectContaining({ body: 'edited' }) },
    ]);

    expect(
      (await call(`/messages/${message.id}`, { method: 'DELETE', headers: USER2 })).status,
    ).toBe(403);
    expect(
      (await call(`/messages/${message.id}`, { method: 'DELETE', headers: USER1 })).status,
    ).toBe(204);
    const deleted = await json<Changes>(
      await call(`/channels/dev/changes?since=${changes.cursor}&wait=5`, { headers: USER1 }),
    );
    expect(deleted.changes).toEqual([{ id: message.id, op: 'delete' }]);
    expect((await call('/messages/999999', { method: 'DELETE', headers: USER1 })).status).toBe(404);
  });

  it('pages a channel with Poll-Cursor', async () => {
    for (let i = 0; i < 5; i++) await post('/channels/paged/messages', { body: `m${i}` });
    const first = await call('/channels/paged/messages?limit=2', { headers: USER1 });
    expect(first.headers.get('poll-cursor')).toBeTruthy();
    const page = await json<{ items: MessageRow[]; nextCursor: string; hasMore: boolean }>(first);
    expect(page.items.map((m) => m.body)).toEqual(['m0', 'm1']);
    const next = await json<{ items: MessageRow[] }>(
      await call(`/channels/paged/messages?limit=2&after=${page.nextCursor}`, { headers: USER1 }),
    );
    expect(next.items.map((m) => m.body)).toEqual(['m2', 'm3']);
  });

  it('runs a task in the background; its owner long-polls it to done; others get 404', async () => {
    const created = await post('/tasks', { input: 'hello' });
    expect(created.status).toBe(201);
    const { id, status } = await json<{ id: string; status: string }>(created);
    expect(status).toBe('pending');
    expect((await call(`/tasks/${id}`, { headers: USER2 })).status).toBe(404);

    let since = await head(`/tasks/${id}`);
    const seen: string[] = [];
    for (let i = 0; i < 10 && seen[seen.length - 1] !== 'done'; i++) {
      const res = await call(`/tasks/${id}?since=${since}&wait=5`, { headers: USER1 });
      if (res.status === 204) continue;
      const body = await json<TaskBody>(res);
      seen.push(body.task.status);
      since = body.cursor;
    }
    expect(seen[seen.length - 1]).toBe('done');
    const final = await json<TaskBody>(await call(`/tasks/${id}`, { headers: USER1 }));
    expect(final.task.result).toBe('olleh');
  });

  it('follows a channel and a task in one batch poll', async () => {
    const task = await json<{ id: string }>(await post('/tasks', { input: 'batch' }));
    const feeds = {
      '/channels/batch/changes': await head('/channels/batch/changes'),
      [`/tasks/${task.id}`]: await head(`/tasks/${task.id}`),
    };
    const res = await post('/poll', { feeds, wait: 10 });
    expect(res.status).toBe(200);
    const body = await json<{ feeds: Record<string, { status: number; body: TaskBody }> }>(res);
    expect(body.feeds[`/tasks/${task.id}`].status).toBe(200);
    expect(body.feeds[`/tasks/${task.id}`].body.task.status).toMatch(/running|done/);
  });

  it('answers bad input with JSON 4xx errors', async () => {
    const cases: [Promise<Response>, number][] = [
      [call('/channels/general/changes'), 401],
      [call('/channels/general/changes', { headers: { authorization: 'Bearer nope' } }), 401],
      [post('/channels/general/messages', { body: '' }), 400],
      [post('/channels/general/messages', { body: 'x'.repeat(2001) }), 400],
      [post('/channels/Bad%20Channel/messages', { body: 'x' }), 400],
      [call('/channels/Bad%20Channel/changes', { headers: USER1 }), 400],
      [post('/tasks', { input: 42 }), 400],
      [call('/tasks/abc', { headers: USER1 }), 400],
      [call('/tasks/123456789', { headers: USER1 }), 404],
      [call('/channels/general/changes?since=nope', { headers: USER1 }), 400],
      [post('/poll', { feeds: { '/nope': null } }), 400],
    ];
    for (const [request, status] of cases) {
      const res = await request;
      expect(res.status).toBe(status);
      expect((await json<{ statusCode: number }>(res)).statusCode).toBe(status);
    }
  });

  it('serves /health without a key', async () => {
    const res = await call('/health');
    expect(res.status).toBe(200);
    // Terminus: {status, info, error, details}; test/operate covers the rest.
    expect(await json<{ status: string; info: { reader: { role: string } } }>(res)).toMatchObject({
      status: 'ok',
      info: { reader: { status: 'up', role: 'leader' } },
    });
  });
});

describe('example app limits from the environment', () => {
  let run: RunningExample;

  beforeAll(async () => {
    run = await startExampleOnFreshDatabase({
      POLL_MAX_HELD_PER_CLIENT: '1',
      POLL_MAX_WAIT_S: '2',
    });
  });

  afterAll(async () => {
    await run?.close();
  });

  it('applies POLL_MAX_HELD_PER_CLIENT per user and POLL_MAX_WAIT_S', async () => {
    const res = await fetch(`${run.url}/channels/x/changes`, { headers: USER1 });
    const since = res.headers.get('poll-cursor')!;
    const started = Date.now();
    const held = fetch(`${run.url}/channels/x/changes?since=${since}&wait=30`, { headers: USER1 });
    await new Promise((r) => setTimeout(r, 200));
    const second = await fetch(`${run.url}/channels/x/changes?since=${since}&wait=30`, {
      headers: USER1,
    });
    expect(second.status).toBe(429);
    expect(Number(second.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    const other = fetch(`${run.url}/channels/x/changes?since=${since}&wait=30`, { headers: USER2 });
    expect((await held).status).toBe(204); // clamped to the 2 s maximum
    expect(Date.now() - started).toBeLessThan(4000);
    expect((await other).status).toBe(204);
  });
});
