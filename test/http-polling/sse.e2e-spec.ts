import { Controller, Get, Sse } from '@nestjs/common';
import { Client } from 'pg';
import { LiveStream, type LiveStreamOptions } from '../../src';
import { HeldRequests } from '../../src/http-polling/held-requests.service';
import { FeedCursorCodec } from '../../src/http-polling/feed-cursor';
import { startItemsApp, type ItemsApp } from '../fixtures/items-app';
import { revokedUsers } from '../fixtures/items-feed.controller';
import { FIXTURE_KEEP_ALIVE_S } from '../fixtures/items-stream.controller';
import { startExampleOnFreshDatabase, type RunningExample } from '../support/example-app';
import { createItemsTable, startFailure } from '../support/polling-app';
import { SseReader, type SseBlock } from '../support/sse-reader';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { waitFor } from '../support/wait-for';

interface ChangesBody {
  changes: { id: string; op: string; row?: { id: string; run: number; body: string } }[];
  cursor: string;
  reason: string;
}
const bodyOf = (block: SseBlock) => JSON.parse(block.data!) as ChangesBody;

describe('@LiveStream (Server-Sent Events) over HTTP', () => {
  let db: TestDatabase;
  let items: ItemsApp;
  let writer: Client;
  const readers: SseReader[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    items = await startItemsApp(db.url);
    writer = new Client(db.config);
    await writer.connect();
  });

  afterEach(async () => {
    for (const reader of readers.splice(0)) reader.close();
    await waitFor(() => held().size === 0, { message: 'every stream of the test was released' });
  });

  afterAll(async () => {
    await writer?.end();
    items?.app.getHttpServer().closeAllConnections();
    await items?.close();
    await db?.drop();
  });

  const held = () => items.app.get(HeldRequests);

  async function open(path: string, headers: Record<string, string> = {}, base = items.url) {
    const reader = await SseReader.open(`${base}${path}`, headers);
    readers.push(reader);
    return reader;
  }

  async function insert(run: number, body: string): Promise<string> {
    const { rows } = await writer.query<{ id: string }>(
      'INSERT INTO items (run, body) VALUES ($1, $2) RETURNING id',
      [run, body],
    );
    return rows[0].id;
  }

  async function longPollHead(run: number): Promise<string> {
    const res = await fetch(`${items.url}/runs/${run}/changes`);
    await res.arrayBuffer();
    return res.headers.get('poll-cursor')!;
  }

  it('starts at the head, then sends each change as an event whose id is the cursor', async () => {
    const stream = await open('/runs/1/stream');
    expect(stream.status).toBe(200);
    expect(stream.response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const head = await stream.event(1);
    expect(stream.comments[0]).toBe('connected');
    expect(head.event).toBeUndefined(); // a plain `message` event
    expect(bodyOf(head)).toEqual({ changes: [], cursor: head.id, reason: 'immediate' });
    expect(head.id).toBe(await longPollHead(1));
    await waitFor(() => held().size === 1);

    const id = await insert(1, 'hello');
    const event = await stream.event(2);
    const body = bodyOf(event);
    expect(body.reason).toBe('change');
    expect(body.changes).toEqual([{ id, op: 'upsert', row: { id, run: 1, body: 'hello' } }]);
    expect(event.id).toBe(body.cursor);
    expect(event.id).not.toBe(head.id);
    // The event id is a feed cursor like any other: the long poll continues from it.
    const res = await fetch(`${items.url}/runs/1/changes?since=${event.id}&wait=0`);
    expect(((await res.json()) as ChangesBody).changes).toEqual([]);

    await insert(2, 'another partition');
    await insert(1, 'second');
    const third = await stream.event(3);
    expect(bodyOf(third).changes.map((c) => c.row?.body)).toEqual(['second']);
  });

  it('resumes from Last-Event-ID without missing a change committed while it was disconnected', async () => {
    const first = await open('/runs/3/stream');
    await first.event(1);
    await waitFor(() => held().size === 1);
    const a = await insert(3, 'a');
    const seen = await first.event(2);
    expect(bodyOf(seen).changes.map((c) => c.id)).toEqual([a]);
    first.close();
    await waitFor(() => held().size === 0, { message: 'the disconnect released the stream' });

    // Committed while no client is connected.
    const b = await insert(3, 'b');
    const c = await insert(3, 'c');
    await writer.query('DELETE FROM items WHERE id = $1', [a]);
    // Indexed before the client comes back (a fixed pause was too short on a loaded machine).
    await waitFor(async () => {
      const res = await fetch(`${items.url}/runs/3/changes?since=${seen.id}&wait=0`);
      return ((await res.json()) as ChangesBody).changes.length === 3;
    });

    const again = await open('/runs/3/stream', { 'Last-Event-ID': seen.id! });
    const resumed = await again.event(1);
    const body = bodyOf(resumed);
    expect(body.reason).toBe('immediate');
    expect(body.changes).toEqual([
      { id: b, op: 'upsert', row: { id: b, run: 3, body: 'b' } },
      { id: c, op: 'upsert', row: { id: c, run: 3, body: 'c' } },
      { id: a, op: 'delete' },
    ]);
    expect(resumed.id).toBe(body.cursor);
    // ... and keeps following.
    const d = await insert(3, 'd');
    expect(bodyOf(await again.event(2)).changes.map((x) => x.id)).toEqual([d]);
  });

  it('takes the cursor from ?since= too; Last-Event-ID wins over it', async () => {
    const before = await longPollHead(4);
    const x = await insert(4, 'x');
    await new Promise((r) => setTimeout(r, 100));
    const bySince = await open(`/runs/4/stream?since=${before}`);
    const event = await bySince.event(1);
    expect(bodyOf(event).changes.map((c) => c.id)).toEqual([x]);

    const byHeader = await open(`/runs/4/stream?since=${before}`, { 'Last-Event-ID': event.id! });
    await byHeader.until((r) => r.comments.includes('keep-alive'));
    expect(byHeader.events).toEqual([]); // nothing after the header's cursor
  });

  it('sends event: reset with the head for a cursor of another generation, then follows from there', async () => {
    const foreign = new FeedCursorCodec('nestjs-polling').encode({
      generation: 'zz9other',
      position: 5,
    });
    const head = await longPollHead(5);
    const stream = await open('/runs/5/stream', { 'Last-Event-ID': foreign });
    const reset = await stream.event(1);
    expect(reset.event).toBe('reset');
    expect(JSON.parse(reset.data!)).toEqual({ cursor: head });
    expect(reset.id).toBe(head);
    await waitFor(() => held().size === 1);
    const id = await insert(5, 'after reset');
    const next = await stream.event(2);
    expect(bodyOf(next).changes.map((c) => c.id)).toEqual([id]);
  });

  it('writes keep-alive comments while the feed is quiet', async () => {
    const stream = await open('/runs/6/stream');
    await stream.event(1);
    const started = Date.now();
    await stream.until((r) => r.comments.filter((c) => c === 'keep-alive').length >= 3);
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(3 * FIXTURE_KEEP_ALIVE_S * 1000 - 100);
    expect(elapsed).toBeLessThan(3 * FIXTURE_KEEP_ALIVE_S * 1000 + 1000);
    expect(stream.raw).toContain('\n: keep-alive\n\n');
    expect(stream.events).toHaveLength(1);
  });

  it('answers a bad Last-Event-ID, since or partition with a JSON 400 before the stream starts', async () => {
    for (const [path, headers] of [
      ['/runs/1/stream', { 'Last-Event-ID': 'not-a-cursor' }],
      ['/runs/1/stream?since=garbage', {}],
      ['/runs/1/stream?since=a&since=b', {}],
      [`/runs/${'9'.repeat(201)}/stream`, {}],
    ] as const) {
      const res = await fetch(`${items.url}${path}`, { headers });
      expect(res.status).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/application\/json/);
      expect(await res.json()).toMatchObject({ statusCode: 400 });
    }
    expect(held().size).toBe(0);
  });

  it('releases the held slot, its listener and its timer when the client disconnects', async () => {
    const streams = await Promise.all([1, 2, 3].map(() => open('/runs/7/stream')));
    await Promise.all(streams.map((s) => s.event(1)));
    await waitFor(() => held().size === 3);
    expect(held().feedCount).toBe(1);
    for (const stream of streams) stream.close();
    await waitFor(() => held().size === 0);
    expect(held().feedCount).toBe(0);
    const runs = items.runs.count;
    await insert(7, 'nobody listens');
    await new Promise((r) => setTimeout(r, 300));
    expect(items.runs.count).toBe(runs); // no handler ran for a stream that is gone
  });

  it('checks authorize before the stream (403) and on every wake (error event, then the end)', async () => {
    revokedUsers.add('mallory');
    try {
      const refused = await fetch(`${items.url}/private/8/stream`, {
        headers: { 'x-user': 'mallory' },
      });
      expect(refused.status).toBe(403);
      expect(await refused.json()).toMatchObject({ statusCode: 403 });

      const stream = await open('/private/8/stream', { 'x-user': 'alice' });
      const head = await stream.event(1);
      await waitFor(() => held().size === 1);
      revokedUsers.add('alice');
      await insert(8, 'secret');
      const error = await stream.event(2);
      expect(error.event).toBe('error');
      expect(error.id).toBe(head.id); // the client's cursor does not move
      expect(JSON.parse(error.data!)).toMatchObject({ statusCode: 403 });
      await stream.done;
      expect(stream.ended).toBe(true);
    } finally {
      revokedUsers.delete('mallory');
      revokedUsers.delete('alice');
    }
  });
});

describe('@LiveStream limits and shutdown', () => {
  let db: TestDatabase;
  let app: ItemsApp | undefined;
  const readers: SseReader[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
  });

  afterEach(async () => {
    for (const reader of readers.splice(0)) reader.close();
    app?.app.getHttpServer().closeAllConnections();
    await app?.close();
    app = undefined;
  });

  afterAll(async () => {
    await db?.drop();
  });

  async function open(path: string) {
    const reader = await SseReader.open(`${app!.url}${path}`);
    readers.push(reader);
    return reader;
  }

  it('counts a stream as a held request: 429 beyond maxHeldPerClient, before the stream', async () => {
    app = await startItemsApp(db.url, { http: { maxHeldPerClient: 1, maxHeld: 2 } });
    const first = await open('/runs/1/stream');
    await first.event(1);
    for (const path of ['/runs/1/stream', '/runs/2/stream']) {
      const res = await fetch(`${app.url}${path}`);
      expect(res.status).toBe(429);
      expect(res.headers.get('retry-after')).toBe('1');
      expect(await res.json()).toMatchObject({ statusCode: 429 });
    }
    // A long poll of the same client counts against the same limit.
    const head = (await fetch(`${app.url}/runs/1/changes`)).headers.get('poll-cursor');
    expect((await fetch(`${app.url}/runs/1/changes?since=${head}&wait=5`)).status).toBe(429);

    first.close();
    await waitFor(() => app!.app.get(HeldRequests).size === 0);
    const again = await open('/runs/1/stream'); // the slot is free again
    expect(again.status).toBe(200);
  });

  it('answers 503 when the process holds maxHeld requests', async () => {
    app = await startItemsApp(db.url, {
      http: { maxHeld: 1, clientKey: (req) => String(req.headers['x-client'] ?? 'anon') },
    });
    const first = await open('/runs/1/stream');
    await first.event(1);
    const res = await fetch(`${app.url}/runs/1/stream`, { headers: { 'x-client': 'other' } });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
  });

  it.each<[string, LiveStreamOptions, boolean, RegExp]>([
    ['without @Sse', { feed: 'items', partition: 'run' }, false, /needs Nest's @Sse/],
    ['of an unknown feed', { feed: 'nope', partition: 'run' }, true, /not a tracked table's feed/],
    ['without a partition', { feed: 'items' }, true, /partitioned by run/],
    ['with keepAliveS 0', { feed: 'items', partition: 'run', keepAliveS: 0 }, true, /keepAliveS/],
  ])('fails the start for a @LiveStream route %s', async (_case, options, sse, message) => {
    @Controller()
    class BadController {
      @(sse ? Sse('runs/:run/stream') : Get('runs/:run/stream'))
      @LiveStream(options)
      stream() {
        return {};
      }
    }
    expect(await startFailure(db, [BadController])).toEqual(
      expect.objectContaining({ message: expect.stringMatching(message) }),
    );
  });

  it('ends every stream on shutdown, after a shutdown comment', async () => {
    app = await startItemsApp(db.url);
    const streams = await Promise.all([1, 2].map(() => open('/runs/1/stream')));
    await Promise.all(streams.map((s) => s.event(1)));
    const started = Date.now();
    const closing = app.close();
    await Promise.all(streams.map((s) => s.done));
    expect(Date.now() - started).toBeLessThan(2000);
    for (const stream of streams) expect(stream.comments).toContain('shutdown');
    await closing;
    app = undefined;
  });
});

describe('@LiveStream on the example app', () => {
  let run: RunningExample;

  beforeAll(async () => {
    run = await startExampleOnFreshDatabase();
  });

  afterAll(async () => {
    await run?.close();
  });

  it('runs the app guard: 401 without a key; the key as ?key= works on the stream route only', async () => {
    const anonymous = await fetch(`${run.url}/channels/general/stream`);
    expect(anonymous.status).toBe(401);
    expect(await anonymous.json()).toMatchObject({ statusCode: 401 });
    const wrong = await fetch(`${run.url}/channels/general/stream?key=nope`);
    expect(wrong.status).toBe(401);
    await wrong.arrayBuffer();
    // ?key= is not accepted elsewhere.
    const changes = await fetch(`${run.url}/channels/general/changes?key=key-1`);
    expect(changes.status).toBe(401);
    await changes.arrayBuffer();

    const stream = await SseReader.open(`${run.url}/channels/general/stream?key=key-1`);
    try {
      const head = await stream.event(1);
      expect(JSON.parse(head.data!)).toEqual({ changes: [], cursor: head.id });
      const posted = await fetch(`${run.url}/channels/general/messages`, {
        method: 'POST',
        headers: { authorization: 'Bearer key-2', 'content-type': 'application/json' },
        body: JSON.stringify({ body: 'hi over SSE' }),
      });
      const message = (await posted.json()) as { id: string };
      const event = await stream.event(2);
      const body = JSON.parse(event.data!) as ChangesBody;
      expect(body.changes).toMatchObject([
        { id: message.id, op: 'upsert', row: { author: 'user2', body: 'hi over SSE' } },
      ]);
      expect(event.id).toBe(body.cursor);
    } finally {
      stream.close();
    }
    // With the header, as a fetch-based client sends it.
    const withHeader = await SseReader.open(`${run.url}/channels/general/stream`, {
      authorization: 'Bearer key-1',
    });
    try {
      expect(withHeader.status).toBe(200);
      await withHeader.event(1);
    } finally {
      withHeader.close();
    }
  });
});
