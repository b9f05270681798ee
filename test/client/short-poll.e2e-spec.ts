import { followFeed } from '../../src/client';
import { waitFor } from '../support/wait-for';
import { startClientFixture, type ChangesBody, type ClientFixture } from './support/client-fixture';
import { FakePage } from './support/fake-page';
import { recordingFetch, sinceOf } from './support/recording-fetch';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('followFeed: short polling and page visibility against the fixture app', () => {
  let fx: ClientFixture;
  let page: FakePage | null = null;
  const stops: AbortController[] = [];
  const runs: Promise<void>[] = [];

  beforeAll(async () => {
    // Poll-Interval is always 1 s here.
    fx = await startClientFixture({ http: { pollIntervalS: { min: 1, max: 1 } } });
  });

  afterEach(async () => {
    for (const stop of stops.splice(0)) stop.abort();
    await Promise.all(runs.splice(0));
    page?.remove();
    page = null;
  });

  afterAll(async () => {
    await fx?.close();
  });

  function follow(start: (signal: AbortSignal) => Promise<void>): void {
    const stop = new AbortController();
    stops.push(stop);
    runs.push(start(stop.signal));
  }

  it('sends If-None-Match (304 while unchanged), waits Poll-Interval, and gets 200 once the feed moved', async () => {
    const since = await fx.head('/runs/31/poll');
    const handlerRuns = fx.items.runs.count;
    const { fetch, requests } = recordingFetch();
    const bodies: { body: ChangesBody; cursor: string }[] = [];
    follow((signal) =>
      followFeed<ChangesBody>({
        url: `${fx.items.url}/runs/31/poll`,
        since,
        mode: 'short',
        shortPoll: { minMs: 100, maxMs: 10_000 },
        fetch,
        signal,
        onChanges: (body, { cursor }) => void bodies.push({ body, cursor }),
      }),
    );
    await waitFor(() => requests.length === 2 && requests[1].status !== 0, { timeoutMs: 3000 });
    expect(requests.map((r) => r.status)).toEqual([304, 304]);
    expect(fx.items.runs.count).toBe(handlerRuns); // 304s never run the handler
    for (const request of requests) {
      expect(sinceOf(request)).toBe(since);
      expect(new URL(request.url).searchParams.get('wait')).toBe('0');
      expect(request.headers['If-None-Match']).toBe(`"${since}"`);
    }

    const id = await fx.insert(31);
    await waitFor(() => requests.length === 4 && requests[3].status !== 0, { timeoutMs: 4000 });
    expect(requests.map((r) => r.status)).toEqual([304, 304, 200, 304]);
    expect(bodies).toHaveLength(1);
    expect(bodies[0].body.changes.map((c) => c.id)).toEqual([id]);
    expect(sinceOf(requests[3])).toBe(bodies[0].cursor);
    expect(requests[3].headers['If-None-Match']).toBe(`"${bodies[0].cursor}"`);
    // Paced by the server's Poll-Interval (1 s), not by the client's 100 ms minimum.
    for (let i = 1; i < requests.length; i++) {
      const gap = requests[i].at - requests[i - 1].at;
      expect(gap).toBeGreaterThanOrEqual(990);
      expect(gap).toBeLessThan(1500);
    }
  });

  it('pauses while the page is hidden and asks at once on visible, focus and online', async () => {
    page = FakePage.install('hidden');
    const since = await fx.head('/runs/32/poll');
    const { fetch, requests } = recordingFetch();
    follow((signal) =>
      followFeed({
        url: `${fx.items.url}/runs/32/poll`,
        since,
        mode: 'short',
        // The 1 s hint is raised to 5 s: a request within a few ms is a wake-up, not the interval.
        shortPoll: { minMs: 5000, maxMs: 10_000 },
        fetch,
        signal,
        onChanges: () => undefined,
      }),
    );
    await sleep(300);
    expect(requests).toHaveLength(0);

    const expectRequestSoon = async (count: number, what: string) => {
      const from = Date.now();
      await waitFor(() => requests.length === count && requests[count - 1].status === 304, {
        timeoutMs: 1000,
        message: `a request after ${what}`,
      });
      expect(requests[count - 1].at - from).toBeLessThan(300);
    };
    page.setVisibility('visible');
    await expectRequestSoon(1, 'visibilitychange → visible');
    page.window.dispatch('focus');
    await expectRequestSoon(2, 'focus');
    page.window.dispatch('online');
    await expectRequestSoon(3, 'online');

    page.setVisibility('hidden');
    page.window.dispatch('focus'); // ends the interval, but the page is hidden: no request
    await sleep(300);
    expect(requests).toHaveLength(3);
    page.setVisibility('visible');
    await expectRequestSoon(4, 'visible again');

    stops.splice(0).forEach((stop) => stop.abort());
    await Promise.all(runs.splice(0));
    expect(page.listenerCount).toBe(0);
  });

  it('polls while hidden with pauseWhenHidden: false', async () => {
    page = FakePage.install('hidden');
    const { fetch, requests } = recordingFetch();
    follow((signal) =>
      followFeed({
        url: `${fx.items.url}/runs/33/poll`,
        since: null,
        mode: 'short',
        pauseWhenHidden: false,
        fetch,
        signal,
        onChanges: () => undefined,
      }),
    );
    await waitFor(() => requests.length === 1 && requests[0].status === 200);
  });
});
