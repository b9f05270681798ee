/**
 * Child process of bench/latency.ts: waiters on one feed over node:http with a keep-alive Agent,
 * either long polls (each waiter asks again at once after every answer, 200 or 204) or SSE
 * subscribers (one stream each; an event is received when its blank line has arrived). Receive times are taken
 * when a response has ended, on the common clock; after a run the parent sends the writer's commit
 * acknowledgement times and this process returns a histogram of commit → receive delays, one value
 * per delivered change per waiter (and one from the time the change reached the server).
 */
import { Agent, get } from 'node:http';
import { connect, type Socket } from 'node:net';
import { clock, serve } from './child';
import { type Histogram, histogram, record } from './latency-histogram';

interface Waiter {
  cursor: string;
  /** 200 answers received, and the longest time between two of them (ms). */
  answers: number;
  lastAt: number;
  longestGapMs: number;
  /** Highest change id this waiter has received. */
  maxId: number;
}

export type Transport = 'long-poll' | 'sse';

interface Session {
  url: string;
  transport: Transport;
  headers: Record<string, string>;
  agent: Agent;
  waiters: Waiter[];
  stopping: boolean;
  /** Per 200 response: receive time and the change ids it carried. */
  receivedAt: number[];
  ids: number[][];
  statuses: Map<number, number>;
  errors: number;
  lastError: string;
  requests: number;
  /** Changes a waiter received again (or out of order). */
  repeats: number;
  cpu: NodeJS.CpuUsage;
  began: number;
  cpuShare: number;
  durationMs: number;
  /** Subscribers that opened a stream and never read from it, and how many the server closed. */
  stalled: Socket[];
  stalledClosed: number;
}

let session: Session | null = null;

function request(
  s: Session,
  url: string,
): Promise<{ status: number; cursor?: string; body: string; at: number }> {
  return new Promise((resolve, reject) => {
    const req = get(url, { agent: s.agent, headers: s.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          cursor: res.headers['poll-cursor'] as string | undefined,
          body: Buffer.concat(chunks).toString('utf8'),
          at: clock(),
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

interface ChangesBody {
  changes: { id: string | number }[];
  cursor: string;
}

/** Records one answer or event carrying changes: its receive time, ids, repeats and gaps. */
function received(s: Session, w: Waiter, body: ChangesBody, at: number): void {
  const ids = body.changes.map((c) => Number(c.id));
  s.receivedAt.push(at);
  s.ids.push(ids);
  // One writer, so ids grow in commit order: an id at or below the highest seen is a repeat.
  for (const id of ids) {
    if (id <= w.maxId) s.repeats++;
    else w.maxId = id;
  }
  w.answers++;
  if (w.lastAt) w.longestGapMs = Math.max(w.longestGapMs, at - w.lastAt);
  w.lastAt = at;
  w.cursor = body.cursor;
}

async function follow(s: Session, w: Waiter): Promise<void> {
  while (!s.stopping) {
    let answer;
    try {
      s.requests++;
      answer = await request(s, `${s.url}?since=${encodeURIComponent(w.cursor)}&wait=25`);
    } catch (error) {
      if (s.stopping) return;
      s.errors++;
      s.lastError = (error as Error).message;
      await new Promise((resolve) => setTimeout(resolve, 50));
      continue;
    }
    s.statuses.set(answer.status, (s.statuses.get(answer.status) ?? 0) + 1);
    if (answer.status === 200) {
      const body = JSON.parse(answer.body) as ChangesBody;
      received(s, w, { ...body, cursor: answer.cursor ?? body.cursor }, answer.at);
    } else if (answer.status === 204) {
      if (answer.cursor) w.cursor = answer.cursor;
    } else {
      s.errors++;
      s.lastError = `HTTP ${answer.status}: ${answer.body.slice(0, 200)}`;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/**
 * Opens an SSE stream and never reads from it: once the kernel's buffers are full, everything the
 * server writes to it stays in the server. Resolves when the request is sent.
 */
function stall(s: Session, url: string): Promise<void> {
  const { hostname, port, pathname, search } = new URL(url);
  const headers = Object.entries({ ...s.headers, accept: 'text/event-stream' })
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      socket.write(`GET ${pathname}${search} HTTP/1.1\r\nHost: ${hostname}\r\n${headers}\r\n`);
      socket.pause();
      resolve();
    });
    socket.once('error', reject);
    socket.once('close', () => {
      if (!s.stopping) s.stalledClosed++;
    });
    s.stalled.push(socket);
  });
}

/** Opens one SSE stream for the waiter; resolves once its headers are in (it is subscribed). */
function subscribe(s: Session, w: Waiter): Promise<void> {
  return new Promise((resolve, reject) => {
    s.requests++;
    const headers = { ...s.headers, accept: 'text/event-stream' };
    const req = get(s.url, { agent: s.agent, headers }, (res) => {
      s.statuses.set(res.statusCode ?? 0, (s.statuses.get(res.statusCode ?? 0) ?? 0) + 1);
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`stream: HTTP ${res.statusCode}`));
        return;
      }
      res.setEncoding('utf8');
      let buffer = '';
      res.on('data', (chunk: string) => {
        const at = clock();
        buffer += chunk;
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = event.split('\n').find((line) => line.startsWith('data: '));
          if (data) received(s, w, JSON.parse(data.slice(6)) as ChangesBody, at);
        }
      });
      res.on('error', (error) => {
        if (s.stopping) return;
        s.errors++;
        s.lastError = error.message;
      });
      resolve();
    });
    req.on('error', (error) => {
      if (s.stopping) return;
      s.errors++;
      s.lastError = error.message;
      reject(error);
    });
  });
}

function spread(values: number[]): { min: number; p50: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    min: sorted[0] ?? NaN,
    p50: sorted[Math.floor(sorted.length / 2)] ?? NaN,
    max: sorted[sorted.length - 1] ?? NaN,
  };
}

const ipc = serve({
  /**
   * Starts `waiters` followers of `url` from the feed's head; resolves once each has asked to wait
   * (long polls) or has its stream open (SSE).
   */
  async start(m) {
    if (session) throw new Error('a session is running');
    const s: Session = {
      url: m.url as string,
      transport: (m.transport as Transport | undefined) ?? 'long-poll',
      headers: (m.headers as Record<string, string>) ?? {},
      // maxFreeSockets: the default (256) makes the Agent close sockets whenever more than 256
      // waiters are between two polls at once (every wake-up here): the next polls then open new
      // connections, which overflow the server's accept backlog and stall for 1–3 s SYN retries.
      agent: new Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: Infinity }),
      waiters: [],
      stopping: false,
      receivedAt: [],
      ids: [],
      statuses: new Map(),
      errors: 0,
      lastError: '',
      requests: 0,
      repeats: 0,
      cpu: process.cpuUsage(),
      began: clock(),
      cpuShare: 0,
      durationMs: 0,
      stalled: [],
      stalledClosed: 0,
    };
    session = s;
    await Promise.all(
      Array.from({ length: (m.stalled as number | undefined) ?? 0 }, () =>
        stall(s, (m.stalledUrl as string | undefined) ?? s.url),
      ),
    );
    const count = m.waiters as number;
    if (s.transport === 'sse') {
      // A stream opened without Last-Event-ID starts at the feed's head.
      for (let i = 0; i < count; i++) {
        s.waiters.push({ cursor: '', maxId: 0, answers: 0, lastAt: 0, longestGapMs: 0 });
      }
      await Promise.all(s.waiters.map((w) => subscribe(s, w)));
      return { started: count };
    }
    // Every waiter starts from the head (a request without since) and then waits.
    const heads = await Promise.all(
      Array.from({ length: count }, async () => {
        const head = await request(s, s.url);
        if (head.status !== 200) throw new Error(`head: HTTP ${head.status} ${head.body}`);
        return head.cursor ?? (JSON.parse(head.body) as ChangesBody).cursor;
      }),
    );
    for (const cursor of heads) {
      const w: Waiter = { cursor, maxId: 0, answers: 0, lastAt: 0, longestGapMs: 0 };
      s.waiters.push(w);
      void follow(s, w);
    }
    return { started: count };
  },

  /** Waits until every waiter has received `lastId` (or `timeoutMs`), then stops them all. */
  async finish(m) {
    const s = session;
    if (!s) throw new Error('no session');
    const lastId = m.lastId as number;
    const deadline = Date.now() + (m.timeoutMs as number);
    while (s.waiters.some((w) => w.maxId < lastId) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    s.stopping = true;
    s.agent.destroy();
    for (const socket of s.stalled) socket.destroy();
    const used = process.cpuUsage(s.cpu);
    s.durationMs = clock() - s.began;
    s.cpuShare = (used.user + used.system) / 1000 / s.durationMs;
    return {
      caughtUp: s.waiters.filter((w) => w.maxId >= lastId).length,
      stalledClosed: s.stalledClosed,
    };
  },

  /**
   * Turns the receive times of the finished session into delays. `changes` holds triples of
   * change id, commit time (the writer's acknowledgement) and the time the change reached the
   * server's bus (polling app) or LISTEN connection (raw server), all on this process's clock.
   */
  report(m) {
    const s = session;
    if (!s || !s.stopping) throw new Error('no finished session');
    session = null;
    const changes = m.changes as Float64Array;
    const times = new Map<number, [number, number]>();
    for (let i = 0; i < changes.length; i += 3) {
      times.set(changes[i], [changes[i + 1], changes[i + 2]]);
    }
    const total: Histogram = histogram();
    const fromServer: Histogram = histogram();
    let unknown = 0;
    let responses = 0;
    let changesPerResponse = 0;
    for (let r = 0; r < s.ids.length; r++) {
      let measured = false;
      for (const id of s.ids[r]) {
        const t = times.get(id);
        if (t === undefined) {
          unknown++;
          continue;
        }
        record(total, s.receivedAt[r] - t[0]);
        if (!Number.isNaN(t[1])) record(fromServer, s.receivedAt[r] - t[1]);
        measured = true;
      }
      if (measured) {
        responses++;
        changesPerResponse += s.ids[r].length;
      }
    }
    return {
      total,
      fromServer,
      expected: s.waiters.length * times.size,
      waiters: s.waiters.length,
      unknown,
      responses,
      changesPerResponse: responses ? changesPerResponse / responses : 0,
      requests: s.requests,
      repeats: s.repeats,
      statuses: Object.fromEntries(s.statuses),
      errors: s.errors,
      lastError: s.lastError,
      cpuShare: s.cpuShare,
      durationMs: s.durationMs,
      // Fairness: how evenly the server answered the waiters.
      answersPerWaiter: spread(s.waiters.map((w) => w.answers)),
      longestGapMs: spread(s.waiters.map((w) => w.longestGapMs)),
    };
  },
});

ipc.ready();
