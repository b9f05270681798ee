import { followFeed, PollHttpError, PollTimeoutError, type ChangesInfo } from '../../src/client';
import { FeedCursorCodec } from '../../src/http-polling/feed-cursor';
import { waitFor } from '../support/wait-for';
import { BufferingProxy } from './support/buffering-proxy';
import {
  auth,
  startExampleFixture,
  type ExampleFixture,
  type MessageChanges,
} from './support/example-fixture';
import { recordingFetch } from './support/recording-fetch';
import { SwitchableProxy } from './support/switchable-proxy';

interface Received {
  ids: string[];
  info: ChangesInfo;
}

describe("followFeed mode 'sse' against the example app (GET /channels/:channel/stream)", () => {
  let fx: ExampleFixture;
  const stops: AbortController[] = [];
  const runs: Promise<void>[] = [];

  beforeAll(async () => {
    fx = await startExampleFixture();
  });

  afterEach(async () => {
    for (const stop of stops.splice(0)) stop.abort();
    await Promise.allSettled(runs.splice(0));
    await waitFor(() => fx.held() === 0, { message: 'every stream and poll was released' });
  });

  afterAll(async () => {
    await fx?.close();
  });

  function follow(
    channel: string,
    more: Partial<Parameters<typeof followFeed<MessageChanges>>[0]> & { base?: string } = {},
  ) {
    const stop = new AbortController();
    stops.push(stop);
    const received: Received[] = [];
    const base = more.base ?? fx.app.url;
    const done = followFeed<MessageChanges>({
      url: `${base}/channels/${channel}/changes`,
      streamUrl: `${base}/channels/${channel}/stream`,
      mode: 'sse',
      headers: auth('key-1'),
      wait: 10,
      signal: stop.signal,
      random: () => 0.5,
      backoff: { baseMs: 200, maxMs: 400 },
      onChanges: (body, info) => {
        expect(info.cursor).toBe(body.cursor);
        received.push({ ids: body.changes.map((c) => c.id), info });
      },
      ...more,
    });
    runs.push(done.catch(() => undefined));
    return { stop, received, done, ids: () => received.flatMap((r) => r.ids) };
  }

  it('delivers over the stream and resumes with Last-Event-ID, missing nothing committed while cut off', async () => {
    const proxy = await SwitchableProxy.start(Number(new URL(fx.app.url).port));
    try {
      const since = await fx.head('/channels/sse-1/changes');
      const { fetch, requests } = recordingFetch();
      const fallbacks: Error[] = [];
      const client = follow('sse-1', {
        base: proxy.url,
        since,
        fetch,
        sse: { maxFailures: 50 },
        onFallback: (reason) => fallbacks.push(reason),
      });
      await waitFor(() => fx.held() === 1, { message: 'the stream is open' });
      const first = [await fx.insert('sse-1', 'a'), await fx.insert('sse-1', 'b')];
      await waitFor(() => client.ids().length === 2);

      const lastSeen = client.received.at(-1)!.info.cursor;
      await proxy.stop(); // the connection drops and the port refuses for a while
      await waitFor(() => fx.held() === 0, { message: 'the server released the cut-off stream' });
      const missed = [await fx.insert('sse-1', 'c'), await fx.insert('sse-1', 'd')];
      await new Promise((r) => setTimeout(r, 300));
      await proxy.resume();
      await waitFor(() => client.ids().length === 4, { message: 'the missed changes arrived' });
      const later = await fx.insert('sse-1', 'e');
      await waitFor(() => client.ids().length === 5);

      expect(client.ids()).toEqual([...first, ...missed, later]);
      expect(client.received.every((r) => r.info.transport === 'sse')).toBe(true);
      expect(fallbacks).toEqual([]);
      const streams = requests.filter((r) => r.url.endsWith('/stream'));
      expect(requests).toEqual(streams); // no long poll
      expect(streams[0].headers['Accept']).toBe('text/event-stream');
      expect(streams[0].headers['Last-Event-ID']).toBe(since);
      // The stream that got through after the outage resumed from the last delivered cursor.
      const resumed = streams.filter((r) => r.status === 200).at(-1)!;
      expect(resumed.headers['Last-Event-ID']).toBe(lastSeen);
    } finally {
      await proxy.stop();
    }
  });

  it('starts at the head without since (the head goes to onChanges, like a long poll)', async () => {
    const client = follow('sse-2');
    await waitFor(() => client.received.length === 1);
    expect(client.received[0].ids).toEqual([]);
    expect(client.received[0].info.cursor).toBe(await fx.head('/channels/sse-2/changes'));
    const id = await fx.insert('sse-2');
    await waitFor(() => client.ids().length === 1);
    expect(client.ids()).toEqual([id]);
  });

  it('falls back to long polling when a proxy buffers the stream, and still delivers', async () => {
    const proxy = await BufferingProxy.start(Number(new URL(fx.app.url).port));
    try {
      const since = await fx.head('/channels/sse-3/changes');
      const fallbacks: Error[] = [];
      const client = follow('sse-3', {
        base: proxy.url,
        since,
        sse: { idleTimeoutMs: 1000 },
        onFallback: (reason) => fallbacks.push(reason),
      });
      await waitFor(() => fallbacks.length === 1, { message: 'the client gave up on SSE' });
      expect(fallbacks[0]).toBeInstanceOf(PollTimeoutError);
      // The buffered stream was abandoned: only the long poll is held now.
      await waitFor(() => fx.held() === 1 && proxy.paths.some((p) => p.includes('/changes?')));
      const ids = [await fx.insert('sse-3', 'x'), await fx.insert('sse-3', 'y')];
      await waitFor(() => client.ids().length === 2, { message: 'delivered by long polling' });
      expect(client.ids()).toEqual(ids);
      expect(client.received.every((r) => r.info.transport === 'long')).toBe(true);
      expect(proxy.paths.filter((p) => p.includes('/stream'))).toHaveLength(1);
      // The long poll continued from the client's cursor.
      expect(proxy.paths.find((p) => p.includes('/changes?'))).toContain(
        `since=${encodeURIComponent(since)}`,
      );
    } finally {
      await proxy.close();
    }
  });

  it('falls back at once when streamUrl answers with something that is not an event stream', async () => {
    const since = await fx.head('/channels/sse-4/changes');
    const fallbacks: Error[] = [];
    const client = follow('sse-4', {
      since,
      streamUrl: `${fx.app.url}/channels/sse-4/messages`, // a JSON list route
      onFallback: (reason) => fallbacks.push(reason),
    });
    await waitFor(() => fallbacks.length === 1);
    await waitFor(() => fx.held() === 1);
    const id = await fx.insert('sse-4');
    await waitFor(() => client.ids().length === 1);
    expect(client.ids()).toEqual([id]);
    expect(client.received[0].info.transport).toBe('long');
  });

  it('hands a reset to onResync and keeps following the stream from the head', async () => {
    const foreign = new FeedCursorCodec('nestjs-polling').encode({
      generation: 'zz9',
      position: 1,
    });
    const head = await fx.head('/channels/sse-5/changes');
    const resyncs: string[] = [];
    const client = follow('sse-5', {
      since: foreign,
      onResync: (cursor) => void resyncs.push(cursor),
    });
    await waitFor(() => resyncs.length === 1);
    expect(resyncs).toEqual([head]);
    await waitFor(() => fx.held() === 1);
    const id = await fx.insert('sse-5');
    await waitFor(() => client.ids().length === 1);
    expect(client.ids()).toEqual([id]);
    expect(client.received[0].info.transport).toBe('sse');
  });

  it('rejects on a 401 (final, like a long poll) and on a bad cursor (400)', async () => {
    const anonymous = follow('sse-6', { headers: {} });
    await expect(anonymous.done).rejects.toMatchObject({ status: 401 });
    await expect(anonymous.done).rejects.toBeInstanceOf(PollHttpError);
    const bad = follow('sse-6', { since: 'not-a-cursor' });
    await expect(bad.done).rejects.toMatchObject({ status: 400 });
  });

  it('stops at once on abort and leaves nothing held', async () => {
    const client = follow('sse-7');
    await waitFor(() => fx.held() === 1);
    client.stop.abort();
    await client.done;
    await waitFor(() => fx.held() === 0);
  });
});
