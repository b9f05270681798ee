import { HeldRequests } from '../../src/http-polling/held-requests.service';
import { followFeed, followFeeds, PollHttpError } from '../../src/client';
import {
  ensureClientEsmBuilt,
  startExampleOnFreshDatabase,
  type RunningExample,
} from '../support/example-app';
import { testPlatform } from '../support/http-platform';
import { waitFor } from '../support/wait-for';

interface MessageRow {
  id: string;
  author: string;
  body: string;
}
interface MessageChanges {
  changes: { id: string; op: 'upsert' | 'delete'; row?: MessageRow }[];
  cursor: string;
}
interface TaskBody {
  task: { id: string; status: string; result: string | null };
}

/** The client against the example app: Bearer auth, a snapshot then its feed, a batch. */
describe(`client SDK against the example app (${testPlatform()})`, () => {
  let run: RunningExample;
  const stops: AbortController[] = [];
  const runs: Promise<void>[] = [];
  const auth = (key: string) => ({ Authorization: `Bearer ${key}` });

  beforeAll(async () => {
    run = await startExampleOnFreshDatabase({ TASK_DELAY_MS: '100' });
  });

  afterEach(async () => {
    for (const stop of stops.splice(0)) stop.abort();
    await Promise.all(runs.splice(0));
    await waitFor(() => run.example.app.get(HeldRequests).size === 0);
  });

  afterAll(async () => {
    await run?.close();
  });

  function follow(start: (signal: AbortSignal) => Promise<void>): void {
    const stop = new AbortController();
    stops.push(stop);
    runs.push(start(stop.signal));
  }

  async function api(method: string, path: string, key: string, body?: unknown) {
    const res = await fetch(`${run.url}${path}`, {
      method,
      // A content type only with a body: Fastify refuses an empty JSON body (400).
      headers: {
        ...auth(key),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return text ? (JSON.parse(text) as Record<string, string>) : {};
  }

  it('loads a channel page, then follows its feed from the Poll-Cursor with a Bearer key', async () => {
    await api('POST', '/channels/sdk/messages', 'key-1', { body: 'before' });
    const page = await fetch(`${run.url}/channels/sdk/messages`, { headers: auth('key-1') });
    const since = page.headers.get('poll-cursor');
    const { items } = (await page.json()) as { items: MessageRow[] };
    expect(items.map((m) => m.body)).toEqual(['before']);

    const seen: MessageChanges['changes'] = [];
    follow((signal) =>
      followFeed<MessageChanges>({
        url: `${run.url}/channels/sdk/changes`,
        since,
        headers: () => auth('key-1'),
        signal,
        onChanges: (body) => void seen.push(...body.changes),
      }),
    );
    const created = await api('POST', '/channels/sdk/messages', 'key-2', { body: 'hello' });
    // The Poll-Cursor is the head read before the page query: if 'before' was not indexed yet, it
    // comes again as a change (applying it again is idempotent). Look at 'hello' only.
    const hello = () => seen.filter((c) => c.id === created.id);
    await waitFor(() => hello().length === 1);
    expect(hello()[0]).toMatchObject({ op: 'upsert', row: { author: 'user2', body: 'hello' } });
    await api('DELETE', `/messages/${created.id}`, 'key-2');
    await waitFor(() => hello().length === 2);
    expect(hello()[1]).toEqual({ id: created.id, op: 'delete' });
    expect(seen.every((c) => c.id === created.id || c.row?.body === 'before')).toBe(true);
  });

  it('runs on the platform HTTP_PLATFORM names, and serves the demo page and the SDK', async () => {
    expect(run.example.app.getHttpAdapter().getType()).toBe(testPlatform());
    ensureClientEsmBuilt();
    for (const [path, type] of [
      ['/', /^text\/html/],
      ['/follow-channel.js', /javascript/],
      ['/sdk/index.js', /javascript/],
    ] as const) {
      const res = await fetch(`${run.url}${path}`);
      expect([path, res.status]).toEqual([path, 200]);
      expect(res.headers.get('content-type')).toMatch(type);
      expect((await res.text()).length).toBeGreaterThan(100);
    }
  });

  it('rejects with the 401 when the key is wrong', async () => {
    const error = await followFeed({
      url: `${run.url}/channels/sdk/changes`,
      headers: auth('nope'),
      signal: new AbortController().signal,
      onChanges: () => undefined,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PollHttpError);
    expect((error as PollHttpError).status).toBe(401);
  });

  it('follows a channel and a task with one batch request, per feed', async () => {
    const task = await api('POST', '/tasks', 'key-1', { input: 'abc' });
    const taskFeed = `/tasks/${task.id}`;
    const statuses: string[] = [];
    const messages: string[] = [];
    follow((signal) =>
      followFeeds<TaskBody | MessageChanges>({
        url: `${run.url}/poll`,
        feeds: { '/channels/batch/changes': null, [taskFeed]: null },
        headers: auth('key-1'),
        signal,
        onChanges: (feed, body) => {
          if (feed === taskFeed) statuses.push((body as TaskBody).task.status);
          else messages.push(...(body as MessageChanges).changes.map((c) => c.row!.body));
        },
      }),
    );
    // The task route answers its current state, so the head answer already shows it.
    await waitFor(() => statuses.at(-1) === 'done', { message: `task statuses: ${statuses}` });
    expect(['pending', 'running']).toContain(statuses[0]);
    await api('POST', '/channels/batch/messages', 'key-2', { body: 'in the batch' });
    await waitFor(() => messages.length === 1);
    expect(messages).toEqual(['in the batch']);
  });
});
