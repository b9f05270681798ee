import { DataSource } from 'typeorm';
import { Message } from '../../example/messages/message.entity';
import { followFeed } from '../../src/client';
import { waitFor } from '../support/wait-for';
import {
  auth,
  startExampleFixture,
  type ExampleFixture,
  type MessageChanges,
} from './support/example-fixture';
import { FakePage } from './support/fake-page';
import { recordingFetch, sinceOf } from './support/recording-fetch';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The example has no @Poll route: `mode: 'short'` against its @LongPoll channel feed sends wait=0
 * and If-None-Match, which the server answers as a short poll (304 while unchanged).
 */
describe('followFeed: short polling and page visibility against the example app', () => {
  let fx: ExampleFixture;
  let page: FakePage | null = null;
  const stops: AbortController[] = [];
  const runs: Promise<void>[] = [];

  beforeAll(async () => {
    fx = await startExampleFixture();
  });

  afterEach(async () => {
    for (const stop of stops.splice(0)) stop.abort();
    await Promise.all(runs.splice(0));
    page?.remove();
    page = null;
    jest.restoreAllMocks();
  });

  afterAll(async () => {
    await fx?.close();
  });

  function follow(start: (signal: AbortSignal) => Promise<void>): void {
    const stop = new AbortController();
    stops.push(stop);
    runs.push(start(stop.signal));
  }

  /** Inserts into `channel` and waits until its feed head moved (one change notice). */
  async function insertAndSee(channel: string): Promise<void> {
    const before = await fx.head(`/channels/${channel}/changes`);
    await fx.insert(channel, 'warm-up');
    await waitFor(async () => (await fx.head(`/channels/${channel}/changes`)) !== before);
  }

  it('sends If-None-Match (304 while unchanged), waits Poll-Interval, and gets 200 once the feed moved', async () => {
    // Two changes in quick succession: the feed's Poll-Interval hint drops to its minimum, 1 s
    // (a quiet feed suggests the maximum, 30 s).
    await insertAndSee('sp-1');
    await insertAndSee('sp-1');
    const since = await fx.head('/channels/sp-1/changes');
    // The channel handler reads the messages repository: count its runs.
    const repositories = jest.spyOn(fx.app.app.get(DataSource), 'getRepository');
    const handlerRuns = () =>
      repositories.mock.calls.filter(([target]) => target === Message).length;
    const { fetch, requests } = recordingFetch();
    const bodies: { body: MessageChanges; cursor: string }[] = [];
    follow((signal) =>
      followFeed<MessageChanges>({
        url: `${fx.app.url}/channels/sp-1/changes`,
        since,
        mode: 'short',
        shortPoll: { minMs: 100, maxMs: 10_000 },
        headers: auth('key-1'),
        fetch,
        signal,
        onChanges: (body, { cursor }) => void bodies.push({ body, cursor }),
      }),
    );
    await waitFor(() => requests.length === 2 && requests[1].status !== 0, { timeoutMs: 3000 });
    expect(requests.map((r) => r.status)).toEqual([304, 304]);
    expect(handlerRuns()).toBe(0); // 304s never run the handler
    for (const request of requests) {
      expect(sinceOf(request)).toBe(since);
      expect(new URL(request.url).searchParams.get('wait')).toBe('0');
      expect(request.headers['If-None-Match']).toBe(`"${since}"`);
    }

    const id = await fx.insert('sp-1', 'new');
    await waitFor(() => requests.length === 4 && requests[3].status !== 0, { timeoutMs: 4000 });
    expect(requests.map((r) => r.status)).toEqual([304, 304, 200, 304]);
    expect(handlerRuns()).toBe(1);
    expect(bodies).toHaveLength(1);
    expect(bodies[0].body.changes).toEqual([
      { id, op: 'upsert', row: expect.objectContaining({ id, channel: 'sp-1', body: 'new' }) },
    ]);
    expect(sinceOf(requests[3])).toBe(bodies[0].cursor);
    expect(requests[3].headers['If-None-Match']).toBe(`"${bodies[0].cursor}"`);
    // Paced by the server's Poll-Interval (1 s), not by the client's 100 ms minimum.
    expect(requests.map((r) => r.pollInterval)).toEqual(['1', '1', '1', '1']);
    for (let i = 1; i < requests.length; i++) {
      const gap = requests[i].at - requests[i - 1].at;
      expect(gap).toBeGreaterThanOrEqual(990);
      expect(gap).toBeLessThan(1500);
    }
  });

  it('pauses while the page is hidden and asks at once on visible, focus and online', async () => {
    page = FakePage.install('hidden');
    const since = await fx.head('/channels/sp-2/changes');
    const { fetch, requests } = recordingFetch();
    follow((signal) =>
      followFeed({
        url: `${fx.app.url}/channels/sp-2/changes`,
        since,
        mode: 'short',
        // A quiet feed's 30 s hint is cut to 10 s: a request within a few ms is a wake-up.
        shortPoll: { minMs: 5000, maxMs: 10_000 },
        headers: auth('key-2'),
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
    expect(requests[0].pollInterval).toBe('30');
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
        url: `${fx.app.url}/channels/sp-3/changes`,
        since: null,
        mode: 'short',
        pauseWhenHidden: false,
        headers: auth('key-1'),
        fetch,
        signal,
        onChanges: () => undefined,
      }),
    );
    await waitFor(() => requests.length === 1 && requests[0].status === 200);
  });
});
