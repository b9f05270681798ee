import { stream, type JsonBatch } from '@durable-streams/client';
import { auth, startExampleFixture, type ExampleFixture } from '../client/support/example-fixture';
import { OwnedRedisServer } from '../support/redis-server';
import { waitFor } from '../support/wait-for';

type Message = {
  type?: string;
  key?: string;
  value?: { body: string };
  headers: { operation?: string; control?: string; offset?: string };
};

/**
 * An SSE reader whose offset stops being valid mid-stream (Redis wiped: the reader rebuilds the
 * index under a new generation) gets the State Protocol's `reset` control message and the
 * channel's rows again, in band, then follows on under the new generation.
 */
describe('Durable Stream SSE across a new index generation', () => {
  let redis: OwnedRedisServer;
  let fx: ExampleFixture;

  beforeAll(async () => {
    redis = await OwnedRedisServer.start();
    fx = await startExampleFixture({ REDIS_URL: redis.url });
  });

  afterAll(async () => {
    await fx?.close();
    await redis?.stop();
  });

  /** Catches up on `channel`, then follows it by SSE from the tail, recording what comes. */
  async function followFromTail(channel: string) {
    const url = `${fx.app.url}/v1/stream/channels/${channel}`;
    // Read until caught up: the head a snapshot names is read before its rows, so a row
    // committed meanwhile comes again as a change after it.
    let offset = '-1';
    await waitFor(async () => {
      const res = await fetch(`${url}?offset=${offset}`, { headers: auth() });
      const body = (await res.json()) as unknown[];
      const caughtUp = offset !== '-1' && body.length === 0;
      offset = res.headers.get('stream-next-offset')!;
      return caughtUp;
    });
    const batches: JsonBatch<Message>[] = [];
    /** `live=` mode and status of every request the client made (it may catch up first). */
    const requests: string[] = [];
    const controller = new AbortController();
    const res = await stream<Message>({
      url,
      headers: auth(),
      offset,
      live: 'sse',
      json: true,
      signal: controller.signal,
      fetch: async (input, init) => {
        const answer = await fetch(input, init);
        const mode = new URL(String(input)).searchParams.get('live') ?? 'catch-up';
        requests.push(`${mode} ${answer.status}`);
        return answer;
      },
    });
    res.subscribeJson((batch) => {
      batches.push(batch);
    });
    const items = () => batches.flatMap((b) => b.items);
    await waitFor(() => batches.some((b) => b.upToDate));
    // The client may catch up with a plain read first and open its SSE response after that: a
    // fault before the response is open would meet the reconnect's 410 instead of a live reset.
    await waitFor(() => requests.some((r) => r.startsWith('sse')), {
      message: `the client never opened its SSE response (requests: ${requests.join(', ')})`,
    });
    expect(requests.filter((r) => r.startsWith('sse'))).toEqual(['sse 200']);
    expect(items()).toEqual([]);
    return { offset, batches, items, requests, stop: () => controller.abort() };
  }

  /** After a reset: the rows again as inserts, then the stream follows on. */
  async function expectResetThenFollow(
    live: Awaited<ReturnType<typeof followFromTail>>,
    channel: string,
    ids: string[],
  ) {
    await waitFor(() => live.items().some((m) => m.headers.control === 'reset'), {
      timeoutMs: 15_000,
      message: 'no reset control message after the index was lost',
    });
    const items = live.items();
    const reset = items.findIndex((m) => m.headers.control === 'reset');
    expect(items.slice(reset + 1).map((m) => [m.key, m.headers.operation])).toEqual(
      ids.map((id) => [id, 'insert']),
    );
    const resetBatch = live.batches.find((b) =>
      b.items.some((m) => m.headers.control === 'reset'),
    )!;
    expect(items[reset].headers.offset).toBe(resetBatch.offset);
    expect(resetBatch.offset).not.toBe(live.offset);
    const next = await fx.insert(channel, 'after');
    await waitFor(() => live.items().some((m) => m.key === next), {
      message: 'the stream did not follow on after the reset',
    });
  }

  it('sends a reset control message and the rows again, then the changes after it', async () => {
    const ids = [await fx.insert('reset', 'a'), await fx.insert('reset', 'b')];
    const live = await followFromTail('reset');
    try {
      await redis.flushAll(); // the index is gone: the reader starts a new generation
      await expectResetThenFollow(live, 'reset', ids);
    } finally {
      live.stop();
    }
  });

  it('keeps the SSE response open while Redis is down, then resets in band', async () => {
    const ids = [await fx.insert('outage', 'a')];
    const live = await followFromTail('outage');
    try {
      await redis.stop(); // reads answer "index unavailable" until Redis is back and rebuilt
      await new Promise((r) => setTimeout(r, 1500));
      await redis.start(); // empty: the reader starts a new generation
      await expectResetThenFollow(live, 'outage', ids);
      // One SSE response all along: no reconnect, which would have met a 410.
      expect(live.requests.filter((r) => r.startsWith('sse'))).toEqual(['sse 200']);
    } finally {
      live.stop();
    }
  });
});
