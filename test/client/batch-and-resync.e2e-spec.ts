import { followFeed, followFeeds } from '../../src/client';
import { waitFor } from '../support/wait-for';
import {
  auth,
  startExampleFixture,
  type ExampleFixture,
  type MessageChanges,
} from './support/example-fixture';
import { recordingFetch } from './support/recording-fetch';
import { SwitchableProxy } from './support/switchable-proxy';

interface Delivery {
  feed: string;
  ids: string[];
  cursor: string;
}

const generationOf = (cursor: string) => cursor.split('.')[0];

describe('followFeeds (POST /poll) and must-refetch (409) against the example app', () => {
  let fx: ExampleFixture;
  let proxy: SwitchableProxy;
  const stops: AbortController[] = [];
  const runs: Promise<void>[] = [];

  beforeAll(async () => {
    fx = await startExampleFixture();
    proxy = await SwitchableProxy.start(port(fx.app.url));
  });

  afterEach(async () => {
    for (const stop of stops.splice(0)) stop.abort();
    await Promise.all(runs.splice(0));
    await waitFor(() => held() === 0, { message: 'every poll of the last test was released' });
  });

  afterAll(async () => {
    await proxy?.stop();
    await fx?.close();
  });

  const port = (url: string) => Number(new URL(url).port);
  const held = () => fx.held();

  function follow(start: (signal: AbortSignal) => Promise<void>): void {
    const stop = new AbortController();
    stops.push(stop);
    runs.push(start(stop.signal));
  }

  it('follows two feeds with one request and routes each answer to its feed', async () => {
    const { fetch, requests } = recordingFetch();
    const deliveries: Delivery[] = [];
    follow((signal) =>
      followFeeds<MessageChanges>({
        url: `${fx.app.url}/poll`,
        feeds: { '/channels/b-11/changes': null, '/channels/b-12/changes': null },
        wait: 10,
        headers: auth('key-1'),
        fetch,
        signal,
        onChanges: (feed, body, info) => {
          expect(info).toEqual({ cursor: body.cursor, status: 200 });
          deliveries.push({ feed, ids: body.changes.map((c) => c.id), cursor: info.cursor });
        },
      }),
    );
    // The first request starts both feeds at their heads; the second one is held for both.
    await waitFor(() => requests.length === 2 && held() === 1);
    const sent = () =>
      requests.map(
        (r) => JSON.parse(r.body!) as { feeds: Record<string, string | null>; wait: number },
      );
    expect(sent()[0]).toEqual({
      feeds: { '/channels/b-11/changes': null, '/channels/b-12/changes': null },
      wait: 10,
    });
    const heads = sent()[1].feeds;
    expect(heads).toEqual({
      '/channels/b-11/changes': await fx.head('/channels/b-11/changes'),
      '/channels/b-12/changes': await fx.head('/channels/b-12/changes'),
    });
    expect(
      requests.every(
        (r) =>
          r.method === 'POST' &&
          r.headers['Content-Type'] === 'application/json' &&
          r.headers.Authorization === 'Bearer key-1',
      ),
    ).toBe(true);

    // The first answer started both feeds: their heads went to onChanges, routed per feed.
    expect(deliveries).toEqual([
      { feed: '/channels/b-11/changes', ids: [], cursor: heads['/channels/b-11/changes'] },
      { feed: '/channels/b-12/changes', ids: [], cursor: heads['/channels/b-12/changes'] },
    ]);
    deliveries.length = 0;

    const a = await fx.insert('b-12');
    await waitFor(() => deliveries.length === 1 && held() === 1);
    const b = await fx.insert('b-11');
    await waitFor(() => deliveries.length === 2 && held() === 1);
    expect(deliveries.map(({ feed, ids }) => ({ feed, ids }))).toEqual([
      { feed: '/channels/b-12/changes', ids: [a] },
      { feed: '/channels/b-11/changes', ids: [b] },
    ]);
    // Each batch carries every feed's latest cursor.
    expect(
      sent()
        .slice(2)
        .map((s) => s.feeds),
    ).toEqual([
      { ...heads, '/channels/b-12/changes': deliveries[0].cursor },
      {
        '/channels/b-11/changes': deliveries[1].cursor,
        '/channels/b-12/changes': deliveries[0].cursor,
      },
    ]);
  });

  it('after a restart on a new index generation: 409 → onResync, then follows from the new head', async () => {
    const single = { resyncs: [] as string[], bodies: [] as MessageChanges[], errors: 0 };
    const batch = { resyncs: [] as [string, string][], deliveries: [] as Delivery[], errors: 0 };
    const backoff = { baseMs: 20, maxMs: 100 };
    const oldCursors = {
      single: await fx.head('/channels/r-21/changes'),
      a: await fx.head('/channels/r-22/changes'),
      b: await fx.head('/channels/r-23/changes'),
    };
    follow((signal) =>
      followFeed<MessageChanges>({
        url: `${proxy.url}/channels/r-21/changes`,
        since: oldCursors.single,
        backoff,
        headers: auth('key-1'),
        signal,
        onError: () => void single.errors++,
        onChanges: (body) => void single.bodies.push(body),
        // Reload the channel's page; follow from the head it read before its page query.
        onResync: async (cursor) => {
          single.resyncs.push(cursor);
          const res = await fetch(`${proxy.url}/channels/r-21/messages`, {
            headers: auth('key-1'),
          });
          await res.json();
          return res.headers.get('poll-cursor')!;
        },
      }),
    );
    follow((signal) =>
      followFeeds<MessageChanges>({
        url: `${proxy.url}/poll`,
        feeds: { '/channels/r-22/changes': oldCursors.a, '/channels/r-23/changes': oldCursors.b },
        backoff,
        headers: auth('key-2'),
        signal,
        onError: () => void batch.errors++,
        onChanges: (feed, body, info) =>
          void batch.deliveries.push({
            feed,
            ids: body.changes.map((c) => c.id),
            cursor: info.cursor,
          }),
        onResync: (feed, cursor) => void batch.resyncs.push([feed, cursor]),
      }),
    );
    await waitFor(() => held() === 2);

    // Restart: a new example app on the same database rebuilds its in-memory index under a new
    // generation, so the old cursors get 409s.
    await proxy.stop();
    await waitFor(() => held() === 0, { message: 'the server saw the clients go' });
    const first = fx.app;
    await fx.stopApp(first);
    fx.app = await fx.startApp();
    proxy.retarget(port(fx.app.url));
    await proxy.resume();

    await waitFor(() => single.resyncs.length === 1 && batch.resyncs.length === 2 && held() === 2, {
      timeoutMs: 5000,
      message: 'both clients resynced and are held again',
    });
    expect(single.errors + batch.errors).toBeGreaterThan(0); // the restart was seen as errors first
    const newHeads = {
      single: await fx.head('/channels/r-21/changes'),
      a: await fx.head('/channels/r-22/changes'),
      b: await fx.head('/channels/r-23/changes'),
    };
    expect(generationOf(newHeads.single)).not.toBe(generationOf(oldCursors.single));
    expect(single.resyncs).toEqual([newHeads.single]);
    expect(batch.resyncs.sort()).toEqual([
      ['/channels/r-22/changes', newHeads.a],
      ['/channels/r-23/changes', newHeads.b],
    ]);
    expect(single.bodies).toEqual([]);
    expect(batch.deliveries).toEqual([]);

    const x = await fx.insert('r-21');
    const y = await fx.insert('r-23');
    await waitFor(() => single.bodies.length === 1 && batch.deliveries.length === 1);
    expect(single.bodies[0].changes.map((c) => c.id)).toEqual([x]);
    expect(batch.deliveries[0]).toMatchObject({ feed: '/channels/r-23/changes', ids: [y] });
  });
});
