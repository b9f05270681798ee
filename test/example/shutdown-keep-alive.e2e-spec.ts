import { Agent, request } from 'node:http';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ensureExampleBuilt,
  ExampleProcess,
  type ProcessExit,
} from '../faults/support/example-process';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { waitFor } from '../support/wait-for';
import { parsePrometheusText } from '../support/prometheus-text';

/*
 * SIGTERM while keep-alive clients hold polls, against the built example in its own process.
 * `fetch` keeps its connections alive (undici's default agent), like a browser, and a client
 * polls again as soon as it has an answer (the SDK does): the process must still exit promptly.
 * With many clients, some request is always on the wire when the server stops listening; Node's
 * server.close() closes only the connections idle at that instant and keeps serving the others,
 * and a browser keeps its socket open after the answer (undici closes its idle ones after 4 s).
 * One such client, made deterministic: its request is half sent when the server stops.
 */

const CLIENTS = 20;
const USER1 = { authorization: 'Bearer key-1' };
const EXIT_WITHIN_MS = 5000;
// Each client polls again this long after any answer (a 204, or the 503 of a stopping server): a
// browser tab or fetch loop that keeps its connection busy, well within keepAliveTimeout (5 s).
const RETRY_MS = 10;

interface Follower {
  /** The status of the poll held when the signal came. */
  first: Promise<string>;
  /** Ends when a request fails (the server is gone). */
  done: Promise<void>;
}

/** Polls `url` in a loop over fetch's kept-alive connections until a request fails. */
function follow(url: string): Follower {
  let answerFirst!: (answer: string) => void;
  const first = new Promise<string>((resolve) => (answerFirst = resolve));
  const done = (async () => {
    for (;;) {
      let res: Response;
      try {
        res = await fetch(url, { headers: USER1 });
        await res.arrayBuffer();
      } catch {
        answerFirst('no answer');
        return;
      }
      answerFirst(String(res.status));
      if (res.status !== 204 && res.status !== 200 && res.status !== 503) return;
      await sleep(RETRY_MS);
    }
  })();
  return { first, done };
}

/** A kept-alive connection with no request on it; resolves once the server has closed it. */
async function idleConnection(agent: Agent, url: string): Promise<{ closed: Promise<void> }> {
  const socket = await new Promise<Socket>((resolve, reject) => {
    const req = request(`${url}/health`, { agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(req.socket!));
    });
    req.on('error', reject);
    req.end();
  });
  return { closed: new Promise((resolve) => socket.once('close', () => resolve())) };
}

/**
 * A browser-like client (node:http with a keep-alive Agent: its socket stays open after the
 * answer until the server closes it) whose batch poll is on the wire: the server has read its
 * headers (it answered `100 Continue`), the body is not sent yet.
 */
function halfSentPoll(agent: Agent, url: string, body: string) {
  const req = request(`${url}/poll`, {
    agent,
    method: 'POST',
    headers: {
      ...USER1,
      'content-type': 'application/json',
      'content-length': body.length,
      expect: '100-continue',
    },
  });
  const headersRead = new Promise<void>((resolve) => req.once('continue', resolve));
  const answer = new Promise<{ status: number; retryAfter: string | undefined }>(
    (resolve, reject) => {
      req.on('response', (res) => {
        res.resume();
        const retryAfter = res.headers['retry-after'];
        res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter }));
      });
      req.on('error', reject);
    },
  );
  req.flushHeaders();
  return { headersRead, answer, finish: () => req.end(body) };
}

describe('SIGTERM with polls held by keep-alive clients (built example, own process)', () => {
  let db: TestDatabase;
  let app: ExampleProcess | undefined;
  // Two browser-like clients: one with an idle kept-alive connection, one whose poll is late.
  const idle = new Agent({ keepAlive: true });
  const browser = new Agent({ keepAlive: true });

  beforeAll(async () => {
    ensureExampleBuilt();
    db = await createTestDatabase();
  }, 60_000);

  afterAll(async () => {
    idle.destroy();
    browser.destroy();
    if (app?.running) await app.stop('SIGKILL');
    await db?.drop();
  });

  it(`answers all ${CLIENTS} held polls (204 or 503) and a poll sent at shutdown, and exits within 5 s`, async () => {
    app = await ExampleProcess.start('shutdown', { DATABASE_URL: db.url, MIGRATE_ON_START: '1' });
    const head = await fetch(`${app.url}/channels/general/changes`, { headers: USER1 });
    expect(head.status).toBe(200);
    const cursor = head.headers.get('poll-cursor')!;
    await head.arrayBuffer();

    const url = `${app.url}/channels/general/changes?since=${cursor}&wait=30`;
    const followers = Array.from({ length: CLIENTS }, () => follow(url));
    await waitFor(
      async () => {
        const res = await fetch(`${app!.url}/metrics`);
        return parsePrometheusText(await res.text()).value('polling_held_requests') >= CLIENTS;
      },
      { timeoutMs: 10_000, intervalMs: 50, message: 'the polls were not all held' },
    );

    // The server closes the idle connection when it stops listening (or earlier); the late
    // client's body goes out right then. The old code answered it and kept its connection open
    // for keepAliveTimeout (5 s + 1 s), and the process exited after 6 s.
    const stopped = await idleConnection(idle, app.url);
    const body = JSON.stringify({ feeds: { '/channels/general/changes': cursor } });
    const late = halfSentPoll(browser, app.url, body);
    await late.headersRead;

    const signalled = performance.now();
    const exit = app
      .whenExited()
      .then((e: ProcessExit) => ({ ...e, afterMs: performance.now() - signalled }));
    app.stop('SIGTERM').catch(() => undefined);
    void stopped.closed.then(late.finish);
    const firsts = await Promise.all(followers.map((f) => f.first));
    const lateAnswer = await late.answer;
    const tooLate = sleep(EXIT_WITHIN_MS + 5000, null, { ref: false });
    const ended = await Promise.race([exit, tooLate]);

    expect(ended).not.toBeNull();
    expect(ended!.code === 0 || ended!.signal === 'SIGTERM').toBe(true);
    expect(ended!.afterMs).toBeLessThan(EXIT_WITHIN_MS);
    expect(firsts.filter((answer) => answer !== '204' && answer !== '503')).toEqual([]);
    // Sent to a stopping server: come back at once (to another instance), not after the
    // outage delay (http.retryAfterS, 5 s here) that kept followers away after each deploy.
    expect(lateAnswer).toEqual({ status: 503, retryAfter: '1' });
    await Promise.all(followers.map((f) => f.done));
  }, 60_000);

  it(`ends ${CLIENTS} open SSE streams of reconnecting clients and exits within 5 s`, async () => {
    app = await ExampleProcess.start('shutdown-sse', {
      DATABASE_URL: db.url,
      MIGRATE_ON_START: '1',
    });
    const url = `${app.url}/channels/general/stream`;
    const ends: string[] = [];
    // A stream client that opens again as soon as its stream ends (EventSource with a short
    // retry), until a request fails: the server is gone.
    const streams = Array.from({ length: CLIENTS }, async () => {
      for (;;) {
        try {
          const res = await fetch(url, { headers: USER1 });
          const text = await res.text();
          ends.push(
            res.status === 200
              ? text.match(/: shutdown\n/)
                ? 'shutdown'
                : text
              : String(res.status),
          );
        } catch {
          return;
        }
        await sleep(RETRY_MS);
      }
    });
    await waitFor(
      async () => {
        const res = await fetch(`${app!.url}/metrics`);
        return parsePrometheusText(await res.text()).value('polling_held_requests') >= CLIENTS;
      },
      { timeoutMs: 10_000, intervalMs: 50, message: 'the streams were not all open' },
    );

    const signalled = performance.now();
    const exit = app
      .whenExited()
      .then((e: ProcessExit) => ({ ...e, afterMs: performance.now() - signalled }));
    app.stop('SIGTERM').catch(() => undefined);
    const late = sleep(EXIT_WITHIN_MS + 5000, null, { ref: false });
    const ended = await Promise.race([exit, late]);

    expect(ended).not.toBeNull();
    expect(ended!.code === 0 || ended!.signal === 'SIGTERM').toBe(true);
    expect(ended!.afterMs).toBeLessThan(EXIT_WITHIN_MS);
    await Promise.all(streams);
    // Every open stream was told (": shutdown"); reconnects were refused (503).
    expect(ends.filter((end) => end !== 'shutdown' && end !== '503')).toEqual([]);
    expect(ends.filter((end) => end === 'shutdown')).toHaveLength(CLIENTS);
  }, 60_000);
});
