import { createServer } from 'node:net';
import { followFeed, PollHttpError, type RetryInfo } from '../../src/client';
import { auth, startExampleFixture, type ExampleFixture } from './support/example-fixture';
import { recordingFetch } from './support/recording-fetch';
import { SwitchableProxy } from './support/switchable-proxy';

// Real I/O still has to happen while the client's timers are fake: keep a real macrotask.
const realSetImmediate = setImmediate;
const tick = () => new Promise<void>((resolve) => realSetImmediate(resolve));

/** Lets real I/O run until `predicate` holds (fake timers do not move meanwhile). */
async function until(predicate: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await tick();
  }
}

/** A port nothing listens on: connections are refused. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Full jitter: floor(r · min(max, base · 2^(attempt−1))). */
const fullJitter = (r: number, attempt: number, baseMs: number, maxMs: number) =>
  Math.floor(r * Math.min(maxMs, baseMs * 2 ** (attempt - 1)));

describe('followFeed: backoff on connection refused (fake timers)', () => {
  afterEach(() => {
    jest.useRealTimers();
  });

  it('waits exactly the full-jitter delays, capped, and stops at once with no timer left', async () => {
    const port = await closedPort();
    jest.useFakeTimers();
    const randoms = [0.5, 0.999, 0.25, 0.999, 0.999, 0.999, 0.1];
    const errors: { error: unknown; info: RetryInfo }[] = [];
    let requests = 0;
    const stop = new AbortController();
    const run = followFeed({
      url: `http://127.0.0.1:${port}/channels/backoff/changes`,
      since: 'any.1.cursor',
      backoff: { baseMs: 100, maxMs: 800 },
      random: () => randoms.shift() ?? 0,
      headers: () => {
        requests++;
        return {};
      },
      signal: stop.signal,
      onError: (error, info) => void errors.push({ error, info }),
      onChanges: () => undefined,
    });

    const expected = [0.5, 0.999, 0.25, 0.999, 0.999, 0.999, 0.1].map((r, i) =>
      fullJitter(r, i + 1, 100, 800),
    );
    expect(expected).toEqual([50, 199, 100, 799, 799, 799, 80]);
    for (let attempt = 1; attempt <= expected.length; attempt++) {
      await until(() => errors.length === attempt, `failure ${attempt}`);
      const { error, info } = errors[attempt - 1];
      // fetch's TypeError (from Node's realm), caused by the refused connection.
      expect((error as Error).name).toBe('TypeError');
      expect((error as { cause?: { code?: string } }).cause?.code).toBe('ECONNREFUSED');
      expect(info).toEqual({ attempt, delayMs: expected[attempt - 1] });
      expect(requests).toBe(attempt);
      if (attempt === expected.length) break;
      await jest.advanceTimersByTimeAsync(info.delayMs - 1);
      expect(requests).toBe(attempt); // not a millisecond early
      await jest.advanceTimersByTimeAsync(1);
      await until(() => requests === attempt + 1, `request ${attempt + 1}`);
    }

    // Stopped during a backoff wait: resolves at once and leaves no timer behind.
    expect(jest.getTimerCount()).toBe(1);
    stop.abort();
    await expect(run).resolves.toBeUndefined();
    expect(jest.getTimerCount()).toBe(0);
    expect(requests).toBe(expected.length);
  });

  describe('with the example app behind a proxy (short polls of GET /channels/:channel/changes)', () => {
    let fx: ExampleFixture;
    let proxy: SwitchableProxy;

    beforeAll(async () => {
      fx = await startExampleFixture();
      proxy = await SwitchableProxy.start(Number(new URL(fx.app.url).port));
    });

    afterAll(async () => {
      await proxy?.stop();
      await fx?.close();
    });

    it('resets the backoff after a successful answer', async () => {
      const since = await fx.head('/channels/bo-41/changes');
      await proxy.stop();
      // Only the timers: the app in this process keeps its clock, microtasks and immediates.
      jest.useFakeTimers({
        doNotFake: [
          'Date',
          'hrtime',
          'nextTick',
          'performance',
          'queueMicrotask',
          'setImmediate',
          'clearImmediate',
        ],
      });
      const errors: RetryInfo[] = [];
      const { fetch, requests } = recordingFetch();
      const statuses = () => requests.filter((r) => r.status !== 0).map((r) => r.status);
      const stop = new AbortController();
      const run = followFeed({
        url: `${proxy.url}/channels/bo-41/changes`,
        since,
        mode: 'short',
        shortPoll: { minMs: 1000, maxMs: 1000 },
        backoff: { baseMs: 100, maxMs: 400 },
        random: () => 0.999,
        headers: auth('key-1'),
        fetch,
        signal: stop.signal,
        onError: (error, info) => {
          expect(error).not.toBeInstanceOf(PollHttpError);
          errors.push(info);
        },
        onChanges: () => undefined,
      });
      try {
        for (let attempt = 1; attempt <= 4; attempt++) {
          await until(() => errors.length === attempt, `failure ${attempt}`);
          if (attempt < 4) await jest.advanceTimersByTimeAsync(errors[attempt - 1].delayMs);
        }
        expect(errors.map((e) => e.delayMs)).toEqual([99, 199, 399, 399]);

        await proxy.resume();
        await jest.advanceTimersByTimeAsync(399);
        await until(() => statuses().length === 1, 'the answer after the app is back');
        expect(statuses()).toEqual([304]);

        await proxy.stop();
        await jest.advanceTimersByTimeAsync(1000); // the short-poll interval
        await until(() => errors.length === 5, 'the next failure');
        expect(errors[4]).toEqual({ attempt: 1, delayMs: 99 });
      } finally {
        stop.abort();
        await run;
      }
    });
  });
});
