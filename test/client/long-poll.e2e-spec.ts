import { followFeed, PollHttpError, PollTimeoutError, type RetryInfo } from '../../src/client';
import type { ExampleApp } from '../../example/example-app';
import { TcpProxy } from '../support/tcp-proxy';
import { waitFor } from '../support/wait-for';
import {
  auth,
  startExampleFixture,
  type ExampleFixture,
  type MessageChanges,
} from './support/example-fixture';
import { recordingFetch, sinceOf } from './support/recording-fetch';

describe('followFeed: long polling against the example app (GET /channels/:channel/changes)', () => {
  let fx: ExampleFixture;
  const stops: AbortController[] = [];
  const runs: Promise<void>[] = [];

  beforeAll(async () => {
    fx = await startExampleFixture();
  });

  afterEach(async () => {
    for (const stop of stops.splice(0)) stop.abort();
    await Promise.allSettled(runs.splice(0));
    await waitFor(() => held() === 0, { message: 'every poll of the last test was released' });
  });

  afterAll(async () => {
    await fx?.close();
  });

  function stopper(): AbortController {
    const stop = new AbortController();
    stops.push(stop);
    return stop;
  }

  const held = () => fx.held();

  it('delivers inserts in order, keeps the cursor and asks again at once after data', async () => {
    const since = await fx.head('/channels/lp-1/changes');
    const { fetch, requests } = recordingFetch();
    const received: { ids: string[]; cursor: string; at: number }[] = [];
    const stop = stopper();
    runs.push(
      followFeed<MessageChanges>({
        url: `${fx.app.url}/channels/lp-1/changes`,
        since,
        wait: 10,
        headers: auth('key-1'),
        fetch,
        signal: stop.signal,
        onChanges: (body, info) => {
          expect(info.status).toBe(200);
          expect(info.cursor).toBe(body.cursor);
          received.push({
            ids: body.changes.map((c) => c.id),
            cursor: info.cursor,
            at: Date.now(),
          });
        },
      }),
    );

    const inserted: string[] = [];
    for (let i = 0; i < 3; i++) {
      await waitFor(() => held() === 1, { message: 'the client holds a long poll' });
      inserted.push(await fx.insert('lp-1', `row ${i}`));
      await waitFor(() => received.flatMap((r) => r.ids).length === i + 1);
    }
    inserted.push(await fx.insert('lp-1', 'a'), await fx.insert('lp-1', 'b'));
    await waitFor(() => received.flatMap((r) => r.ids).length === inserted.length);
    await waitFor(() => held() === 1, { message: 'the client is held again after the data' });

    expect(received.flatMap((r) => r.ids)).toEqual(inserted);
    // Every request continues from the cursor of the answer before it.
    expect(requests.map(sinceOf)).toEqual([since, ...received.map((r) => r.cursor)]);
    expect(new Set(requests.map(sinceOf)).size).toBe(requests.length);
    for (const request of requests) {
      expect(new URL(request.url).searchParams.get('wait')).toBe('10');
      expect(request.headers['If-None-Match']).toBeUndefined();
      expect(request.headers.Authorization).toBe('Bearer key-1');
    }
    // Asked again at once after each answer with data.
    received.forEach((answer, i) => {
      expect(requests[i + 1].at - answer.at).toBeLessThan(250);
    });
  });

  it('without since, delivers the head answer first, then follows from its cursor', async () => {
    const { fetch, requests } = recordingFetch();
    const bodies: { body: MessageChanges; cursor: string }[] = [];
    const stop = stopper();
    runs.push(
      followFeed<MessageChanges>({
        url: `${fx.app.url}/channels/lp-2/changes`,
        headers: auth('key-1'),
        fetch,
        signal: stop.signal,
        onChanges: (body, { cursor }) => void bodies.push({ body, cursor }),
      }),
    );
    await waitFor(() => requests.length === 2 && held() === 1);
    const head = await fx.head('/channels/lp-2/changes');
    expect(sinceOf(requests[0])).toBeNull();
    expect(bodies).toEqual([{ body: { changes: [], cursor: head }, cursor: head }]);
    expect(sinceOf(requests[1])).toBe(head);
    const id = await fx.insert('lp-2', 'after the head');
    await waitFor(() => bodies.length === 2);
    expect(bodies[1].body.changes).toEqual([
      {
        id,
        op: 'upsert',
        row: expect.objectContaining({
          id,
          channel: 'lp-2',
          author: 'user1',
          body: 'after the head',
        }),
      },
    ]);
  });

  it('sends the headers option, evaluated for every request', async () => {
    let calls = 0;
    const { fetch, requests } = recordingFetch();
    const bodies: MessageChanges[] = [];
    const stop = stopper();
    const since = await fx.head('/channels/lp-3/changes');
    runs.push(
      followFeed<MessageChanges>({
        // The example's guard wants a Bearer key: user1's, then user2's (any user reads a channel).
        url: `${fx.app.url}/channels/lp-3/changes`,
        since,
        headers: () => auth(++calls % 2 === 1 ? 'key-1' : 'key-2'),
        fetch,
        signal: stop.signal,
        onChanges: (body) => void bodies.push(body),
      }),
    );
    await waitFor(() => held() === 1);
    const id = await fx.insert('lp-3');
    await waitFor(() => bodies.length === 1 && held() === 1);
    expect(bodies[0].changes.map((c) => c.id)).toEqual([id]);
    expect(requests.map((r) => r.headers.Authorization)).toEqual(['Bearer key-1', 'Bearer key-2']);
    expect(requests.map((r) => r.status)).toEqual([200, 0]);

    // Without a key the guard refuses: a 401 is final, the promise rejects.
    const refused = followFeed({
      url: `${fx.app.url}/channels/lp-3/changes`,
      since,
      signal: stopper().signal,
      onChanges: () => undefined,
    });
    const error = await refused.then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(PollHttpError);
    expect((error as PollHttpError).status).toBe(401);
    expect((error as PollHttpError).body).toMatchObject({ statusCode: 401 });
  });

  it('stops promptly on abort: the held request is aborted and the promise resolves', async () => {
    const stop = stopper();
    const run = followFeed({
      url: `${fx.app.url}/channels/lp-4/changes`,
      since: await fx.head('/channels/lp-4/changes'),
      wait: 30,
      headers: auth('key-1'),
      signal: stop.signal,
      onChanges: () => undefined,
    });
    await waitFor(() => held() === 1);
    const started = Date.now();
    stop.abort();
    await expect(run).resolves.toBeUndefined();
    expect(Date.now() - started).toBeLessThan(200);
    await waitFor(() => held() === 0, { message: 'the server saw the aborted poll go' });
    // Already aborted: resolves without asking.
    const { fetch, requests } = recordingFetch();
    await followFeed({
      url: `${fx.app.url}/channels/lp-4/changes`,
      signal: stop.signal,
      fetch,
      onChanges: () => undefined,
    });
    expect(requests).toHaveLength(0);
  });

  it('gives up on an answer that never comes (half-open connection) and asks again', async () => {
    const proxy = await TcpProxy.start(Number(new URL(fx.app.url).port));
    try {
      const errors: { error: unknown; info: RetryInfo }[] = [];
      const bodies: MessageChanges[] = [];
      const stop = stopper();
      runs.push(
        followFeed<MessageChanges>({
          url: `http://127.0.0.1:${proxy.port}/channels/lp-6/changes`,
          since: await fx.head('/channels/lp-6/changes'),
          wait: 0.5,
          timeoutMs: 300,
          backoff: { baseMs: 10, maxMs: 10 },
          headers: auth('key-1'),
          signal: stop.signal,
          onError: (error, info) => void errors.push({ error, info }),
          onChanges: (body) => void bodies.push(body),
        }),
      );
      await waitFor(() => held() === 1);
      const frozenAt = Date.now();
      proxy.freezeOpenConnections(); // no byte passes any more: the 204 after 0.5 s never arrives
      await waitFor(() => errors.length === 1, { timeoutMs: 3000 });
      expect(Date.now() - frozenAt).toBeGreaterThanOrEqual(250);
      expect(errors[0].error).toBeInstanceOf(PollTimeoutError);
      expect((errors[0].error as PollTimeoutError).timeoutMs).toBe(800);
      // The retry goes over a new connection.
      const id = await fx.insert('lp-6');
      await waitFor(() => bodies.length === 1);
      expect(bodies[0].changes.map((c) => c.id)).toEqual([id]);
    } finally {
      for (const stop of stops.splice(0)) stop.abort();
      await Promise.allSettled(runs.splice(0));
      await proxy.close();
    }
  });

  it('waits for Retry-After on 429, then goes on', async () => {
    // A second example app on the same database that holds one request per client (API key user).
    const limited = await fx.startApp({ POLL_MAX_HELD_PER_CLIENT: '1' });
    const original: ExampleApp = fx.app;
    fx.app = limited;
    try {
      const since = await fx.head('/channels/lp-5/changes');
      const blocker = new AbortController();
      const blocking = fetch(`${limited.url}/channels/lp-5/changes?since=${since}&wait=30`, {
        headers: auth('key-1'),
        signal: blocker.signal,
      }).catch(() => null);
      await waitFor(() => held() === 1);

      const { fetch: recording, requests } = recordingFetch();
      const errors: { error: unknown; info: RetryInfo; at: number }[] = [];
      const bodies: MessageChanges[] = [];
      const stop = stopper();
      runs.push(
        followFeed<MessageChanges>({
          url: `${limited.url}/channels/lp-5/changes`,
          since,
          headers: auth('key-1'), // the same user as the blocker
          fetch: recording,
          random: () => 0.5,
          signal: stop.signal,
          onError: (error, info) => void errors.push({ error, info, at: Date.now() }),
          onChanges: (body) => void bodies.push(body),
        }),
      );
      await waitFor(() => errors.length === 1);
      const [{ error, info }] = errors;
      expect(error).toBeInstanceOf(PollHttpError);
      expect((error as PollHttpError).status).toBe(429);
      // Retry-After: 1, stretched by the jitter (random 0.5 → +10 %).
      expect(info).toEqual({ attempt: 1, delayMs: 1100 });

      blocker.abort();
      await blocking;
      await waitFor(() => requests.length === 2 && held() === 1, { timeoutMs: 3000 });
      expect(requests[1].at - requests[0].at).toBeGreaterThanOrEqual(1100);
      const id = await fx.insert('lp-5');
      await waitFor(() => bodies.length === 1);
      expect(bodies[0].changes.map((c) => c.id)).toEqual([id]);
      expect(errors).toHaveLength(1);
    } finally {
      for (const stop of stops.splice(0)) stop.abort();
      await Promise.allSettled(runs.splice(0));
      fx.app = original;
      await fx.stopApp(limited);
    }
  });
});
