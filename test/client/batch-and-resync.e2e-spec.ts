import { HeldRequests } from '../../src';
import { followFeed, followFeeds } from '../../src/client';
import { waitFor } from '../support/wait-for';
import { startClientFixture, type ChangesBody, type ClientFixture } from './support/client-fixture';
import { recordingFetch } from './support/recording-fetch';
import { SwitchableProxy } from './support/switchable-proxy';

interface Delivery {
  feed: string;
  ids: string[];
  cursor: string;
}

const generationOf = (cursor: string) => cursor.split('.')[0];

describe('followFeeds (batch) and must-refetch (409) against the fixture app', () => {
  let fx: ClientFixture;
  let proxy: SwitchableProxy;
  const stops: AbortController[] = [];
  const runs: Promise<void>[] = [];

  beforeAll(async () => {
    fx = await startClientFixture();
    proxy = await SwitchableProxy.start(port(fx.items.url));
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
  const held = () => fx.items.app.get(HeldRequests).size;

  function follow(start: (signal: AbortSignal) => Promise<void>): void {
    const stop = new AbortController();
    stops.push(stop);
    runs.push(start(stop.signal));
  }

  it('follows two feeds with one request and routes each answer to its feed', async () => {
    const { fetch, requests } = recordingFetch();
    const deliveries: Delivery[] = [];
    follow((signal) =>
      followFeeds<ChangesBody>({
        url: `${fx.items.url}/poll`,
        feeds: { '/runs/11/changes': null, '/runs/12/changes': null },
        wait: 10,
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
      feeds: { '/runs/11/changes': null, '/runs/12/changes': null },
      wait: 10,
    });
    const heads = sent()[1].feeds;
    expect(heads).toEqual({
      '/runs/11/changes': await fx.head('/runs/11/changes'),
      '/runs/12/changes': await fx.head('/runs/12/changes'),
    });
    expect(
      requests.every(
        (r) => r.method === 'POST' && r.headers['Content-Type'] === 'application/json',
      ),
    ).toBe(true);

    // The first answer started both feeds: their heads went to onChanges, routed per feed.
    expect(deliveries).toEqual([
      { feed: '/runs/11/changes', ids: [], cursor: heads['/runs/11/changes'] },
      { feed: '/runs/12/changes', ids: [], cursor: heads['/runs/12/changes'] },
    ]);
    deliveries.length = 0;

    const a = await fx.insert(12);
    await waitFor(() => deliveries.length === 1 && held() === 1);
    const b = await fx.insert(11);
    await waitFor(() => deliveries.length === 2 && held() === 1);
    expect(deliveries.map(({ feed, ids }) => ({ feed, ids }))).toEqual([
      { feed: '/runs/12/changes', ids: [a] },
      { feed: '/runs/11/changes', ids: [b] },
    ]);
    // Each batch carries every feed's latest cursor.
    expect(
      sent()
        .slice(2)
        .map((s) => s.feeds),
    ).toEqual([
      { ...heads, '/runs/12/changes': deliveries[0].cursor },
      { '/runs/11/changes': deliveries[1].cursor, '/runs/12/changes': deliveries[0].cursor },
    ]);
  });

  it('after a restart on a new index generation: 409 → onResync, then follows from the new head', async () => {
    const single = { resyncs: [] as string[], bodies: [] as ChangesBody[], errors: 0 };
    const batch = { resyncs: [] as [string, string][], deliveries: [] as Delivery[], errors: 0 };
    const backoff = { baseMs: 20, maxMs: 100 };
    const oldCursors = {
      single: await fx.head('/runs/21/changes'),
      a: await fx.head('/runs/22/changes'),
      b: await fx.head('/runs/23/changes'),
    };
    follow((signal) =>
      followFeed<ChangesBody>({
        url: `${proxy.url}/runs/21/changes`,
        since: oldCursors.single,
        backoff,
        signal,
        onError: () => void single.errors++,
        onChanges: (body) => void single.bodies.push(body),
        // Reload state from the list endpoint; follow from the head it read before its page.
        onResync: async (cursor) => {
          single.resyncs.push(cursor);
          const res = await fetch(`${proxy.url}/runs/21/items`);
          await res.json();
          return res.headers.get('poll-cursor')!;
        },
      }),
    );
    follow((signal) =>
      followFeeds<ChangesBody>({
        url: `${proxy.url}/poll`,
        feeds: { '/runs/22/changes': oldCursors.a, '/runs/23/changes': oldCursors.b },
        backoff,
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

    // Restart: the in-memory index is rebuilt under a new generation, so old cursors get 409s.
    await proxy.stop();
    await waitFor(() => held() === 0, { message: 'the server saw the clients go' });
    await fx.items.close();
    fx.items = await fx.startApp();
    proxy.retarget(port(fx.items.url));
    await proxy.resume();

    await waitFor(() => single.resyncs.length === 1 && batch.resyncs.length === 2 && held() === 2, {
      timeoutMs: 5000,
      message: 'both clients resynced and are held again',
    });
    expect(single.errors + batch.errors).toBeGreaterThan(0); // the restart was seen as errors first
    const newHeads = {
      single: await fx.head('/runs/21/changes'),
      a: await fx.head('/runs/22/changes'),
      b: await fx.head('/runs/23/changes'),
    };
    expect(generationOf(newHeads.single)).not.toBe(generationOf(oldCursors.single));
    expect(single.resyncs).toEqual([newHeads.single]);
    expect(batch.resyncs.sort()).toEqual([
      ['/runs/22/changes', newHeads.a],
      ['/runs/23/changes', newHeads.b],
    ]);
    expect(single.bodies).toEqual([]);
    expect(batch.deliveries).toEqual([]);

    const x = await fx.insert(21);
    const y = await fx.insert(23);
    await waitFor(() => single.bodies.length === 1 && batch.deliveries.length === 1);
    expect(single.bodies[0].changes.map((c) => c.id)).toEqual([x]);
    expect(batch.deliveries[0]).toMatchObject({ feed: '/runs/23/changes', ids: [y] });
  });
});
