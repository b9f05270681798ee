import { auth, startExampleFixture, type ExampleFixture } from '../client/support/example-fixture';
import { scrape } from '../support/prometheus-text';
import { waitFor } from '../support/wait-for';

/**
 * What a Durable Streams client sees of the example's stream routes beyond the happy path: the
 * API key, read-only 405, bad input as 400 JSON, ETag/304, an offset of another index generation
 * (410 in every mode), and a task stream only for its owner.
 */
describe('example Durable Stream routes: protocol edges', () => {
  let fx: ExampleFixture;
  const get = (path: string, headers: Record<string, string> = auth(), base = fx.app.url) =>
    fetch(`${base}${path}`, { headers });
  const channel = '/v1/stream/channels/edges';

  beforeAll(async () => {
    fx = await startExampleFixture();
    const empty = (await get(channel)).headers.get('stream-next-offset');
    await fx.insert('edges', 'first');
    // Until the index has it, not only the table: a tail read before that would be followed by
    // 'first' again (a snapshot's rows are read after its offset), which the tests below rule out.
    await waitFor(async () => (await get(channel)).headers.get('stream-next-offset') !== empty);
  });

  afterAll(async () => {
    await fx?.close();
  });

  it('needs the API key, and answers writes with 405 and Allow: GET, HEAD', async () => {
    expect((await get(channel, {})).status).toBe(401);
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const res = await fetch(`${fx.app.url}${channel}`, { method, headers: auth() });
      expect(res.status).toBe(405);
      expect(res.headers.get('allow')).toBe('GET, HEAD');
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(await res.json()).toMatchObject({ statusCode: 405 });
    }
  });

  it('answers HEAD with the tail and no body, and has no writable streams by default', async () => {
    const head = await fetch(`${fx.app.url}${channel}`, { method: 'HEAD', headers: auth() });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-type')).toBe('application/json');
    expect(head.headers.get('cache-control')).toBe('no-store');
    expect(head.headers.get('stream-next-offset')).toBe(
      (await get(channel)).headers.get('stream-next-offset'),
    );
    // The conformance suite's write shim is off unless DURABLE_STREAMS_TEST_WRITES=1: no route.
    const put = await fetch(`${fx.app.url}/v1/stream/scratch`, {
      method: 'PUT',
      headers: { ...auth(), 'content-type': 'text/plain' },
      body: 'x',
    });
    expect(put.status).toBe(404);
    expect((await fetch(`${fx.app.url}/v1/stream/scratch`, { method: 'PUT' })).status).toBe(404);
  });

  it('refuses malformed offsets and modes with 400 in JSON, before holding anything', async () => {
    const offset = (await get(channel)).headers.get('stream-next-offset')!;
    for (const query of [
      '?offset=abc',
      '?offset=1,2',
      `?offset=${offset.slice(0, -1)}${offset.endsWith('A') ? 'B' : 'A'}`, // altered MAC
      `?offset=${offset}&offset=${offset}`,
      `?offset=${offset}&live=websocket`,
      '?live=long-poll',
      '?live=sse',
    ]) {
      const res = await get(`${channel}${query}`);
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ statusCode: 400, error: 'Bad Request' });
    }
    expect(fx.held()).toBe(0);
  });

  it('holds live reads as held requests and releases every one its client aborts', async () => {
    const tail = (await get(channel)).headers.get('stream-next-offset')!;
    const controllers = Array.from({ length: 40 }, () => new AbortController());
    const reads = controllers.map((c, i) =>
      fetch(`${fx.app.url}${channel}?offset=${tail}&live=${i % 2 ? 'sse' : 'long-poll'}`, {
        headers: auth(i % 4 < 2 ? 'key-1' : 'key-2'),
        signal: c.signal,
      }).then(
        (res) => res.status,
        () => 'aborted',
      ),
    );
    await waitFor(() => fx.held() === 40, {
      timeoutMs: 15_000, // 40 connections on a loaded 2-core box
      message: `held ${fx.held()} of 40 live reads`,
    });
    for (const c of controllers) c.abort();
    await Promise.all(reads);
    await waitFor(() => fx.held() === 0, { message: `${fx.held()} aborted reads still held` });
  });

  it('shares one handler run between identical live reads woken by one change', async () => {
    const tail = (await get(channel)).headers.get('stream-next-offset')!;
    const before = await scrape(`${fx.app.url}/metrics`);
    const reads = Array.from({ length: 20 }, () =>
      get(`${channel}?offset=${tail}&live=long-poll`).then(async (res) => ({
        status: res.status,
        body: (await res.json()) as { value: { body: string } }[],
      })),
    );
    await waitFor(() => fx.held() === 20, {
      timeoutMs: 15_000,
      message: `held ${fx.held()} of 20 reads`,
    });
    await fx.insert('edges', 'shared');
    const answers = await Promise.all(reads);
    for (const answer of answers) {
      expect(answer.status).toBe(200);
      expect(answer.body.map((m) => m.value.body)).toEqual(['shared']);
    }
    const after = await scrape(`${fx.app.url}/metrics`);
    const delta = (name: string, labels?: Record<string, string>) =>
      after.value(name, labels) - before.value(name, labels);
    // Usually 1 run and 19 shared; a read that wakes more than aggregator.lingerMs after the run
    // ended (a loaded box) starts another: every read either ran or shared, most shared.
    const runs = delta('polling_aggregator_runs_total');
    expect(runs + delta('polling_aggregator_shared_total')).toBe(20);
    expect(runs).toBeLessThanOrEqual(5);
    const longAnswers = { feed: 'messages', kind: 'long', status: '200' };
    expect(delta('polling_responses_total', longAnswers)).toBe(20);
  });

  it('answers a repeated catch-up read with 304 while nothing changed, and 200 after a change', async () => {
    const etagChannel = '/v1/stream/channels/etag';
    await fx.insert('etag', 'first');
    await waitFor(async () => ((await (await get(etagChannel)).json()) as unknown[]).length === 1);
    const first = await get(`${etagChannel}?offset=-1`);
    const etag = first.headers.get('etag')!;
    expect(etag).toMatch(/^".+:.+"$/);
    const again = await get(`${etagChannel}?offset=-1`, { ...auth(), 'If-None-Match': etag });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe('');
    await fx.insert('etag', 'second');
    await waitFor(async () => {
      const res = await get(`${etagChannel}?offset=-1`, { ...auth(), 'If-None-Match': etag });
      return res.status === 200 && ((await res.json()) as unknown[]).length === 2;
    });
  });

  it('answers an offset of another index generation with 410 and the new tail, in every mode', async () => {
    const stale = (await get(channel)).headers.get('stream-next-offset')!;
    // Another instance with its own in-memory index: a new generation of the same change log.
    const other = await fx.startApp();
    try {
      for (const mode of ['', '&live=long-poll', '&live=sse']) {
        const res = await get(`${channel}?offset=${stale}${mode}`, auth(), other.url);
        expect(res.status).toBe(410);
        const body = (await res.json()) as { offset: string; message: string };
        expect(body.message).toMatch(/read the stream again from -1/);
        expect(res.headers.get('stream-next-offset')).toBe(body.offset);
        expect(body.offset).not.toBe(stale);
        // From the new tail, the stream is readable again.
        expect((await get(`${channel}?offset=${body.offset}`, auth(), other.url)).status).toBe(200);
      }
    } finally {
      await fx.stopApp(other);
    }
  });

  it('serves a task stream to its owner only, following its status by long-poll', async () => {
    const created = await fetch(`${fx.app.url}/tasks`, {
      method: 'POST',
      headers: { ...auth(), 'content-type': 'application/json' },
      body: JSON.stringify({ input: 'work' }),
    });
    const { id } = (await created.json()) as { id: string };
    const path = `/v1/stream/tasks/${id}`;
    expect((await get(path, auth('key-2'))).status).toBe(404); // user2 does not own it
    let offset = '-1';
    const seen: string[] = [];
    await waitFor(
      async () => {
        const res = await get(`${path}?offset=${offset}&live=long-poll`);
        if (res.status === 200) {
          const messages = (await res.json()) as { key: string; value: { status: string } }[];
          for (const m of messages) {
            expect(m.key).toBe(id);
            seen.push(m.value.status);
          }
        }
        offset = res.headers.get('stream-next-offset')!;
        return seen.at(-1) === 'done';
      },
      { timeoutMs: 15_000, message: `the task stream never said done (saw ${seen.join(', ')})` },
    );
    expect(seen[0]).toMatch(/pending|running|done/);
  });
});
