/**
 * Child process of bench/latency.ts: long-poll waiters on one feed over node:http with a keep-alive
 * Agent. Each waiter asks again at once after every answer (200 or 204). Receive times are taken
 * when a response has ended, on the common clock; after a run the parent sends the writer's commit
 * acknowledgement times and this process returns a histogram of commit → receive delays, one value
 * per delivered change per waiter (and one from the time the change reached the server).
 */
import { Agent, get } from 'node:http';
import { clock, ready, serveIpc } from './latency-ipc';
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

interface Session {
  url: string;
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
      const ids = body.changes.map((c) => Number(c.id));
      s.receivedAt.push(answer.at);
      s.ids.push(ids);
      // One writer, so ids grow in commit order: an id at or below the highest seen is a repeat.
      for (const id of ids) {
        if (id <= w.maxId) s.repeats++;
        else w.maxId = id;
      }
      w.answers++;
      if (w.lastAt) w.longestGapMs = Math.max(w.longestGapMs, answer.at - w.lastAt);
      w.lastAt = answer.at;
      w.cursor = answer.cursor ?? body.cursor;
    } else if (answer.status === 204) {
      if (answer.cursor) w.cursor = answer.cursor;
    } else {
      s.errors++;
      s.lastError = `HTTP ${answer.status}: ${answer.body.slice(0, 200)}`;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

function spread(values: number[]): { min: number; p50: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    min: sorted[0] ?? NaN,
    p50: sorted[Math.floor(sorted.length / 2)] ?? NaN,
    max: sorted[sorted.length - 1] ?? NaN,
  };
}

serveIpc({
  /** Starts `waiters` followers of `url` from the feed's head; resolves once each has asked to wait. */
  async start(m) {
    if (session) throw new Error('a session is running');
    const s: Session = {
      url: m.url as string,
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
    };
    session = s;
    const count = m.waiters as number;
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
    const used = process.cpuUsage(s.cpu);
    s.durationMs = clock() - s.began;
    s.cpuShare = (used.user + used.system) / 1000 / s.durationMs;
    return { caughtUp: s.waiters.filter((w) => w.maxId >= lastId).length };
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

ready();
