/**
 * Poll clients for bench/http-rates.ts, in a process of their own (node:http, one Agent per
 * client), driven by requests (child.ts):
 *
 *   hold {id, url, count, headers}
 *      sends `count` identical GETs at once; answers when all are written. `held {id}` answers
 *      {statuses, distinctBodies, body} when all are answered.
 *   follow {id, base, groups: [{name, path, mode, clients, since, intervalMs, waitS}]}
 *      follows feeds like the SDK would: `short` = wait=0 + If-None-Match every intervalMs,
 *      `long` = held polls asked again at once. Runs until `finish {id, lastIds: {path: id}}`,
 *      i.e. until every client has the last change of its feed; `finish` answers {groups: [...]}
 *      with answered requests, statuses, socket bytes and latencies (receive time minus the time
 *      the writer put in the row's body).
 */
import { Agent, request, type ClientRequest, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { serve } from './child';

interface Answer {
  status: number;
  headers: IncomingMessage['headers'];
  body: string;
}

function get(
  url: string,
  agent: Agent,
  headers: Record<string, string>,
  onRequest?: (req: ClientRequest) => void,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    onRequest?.(req);
    req.end();
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const now = () => performance.timeOrigin + performance.now();

interface Held {
  statuses: Record<string, number>;
  distinctBodies: number;
  body: string;
}

/** Resolves once every GET is written; `done` once every one is answered. */
function hold(command: Record<string, unknown>): { sent: Promise<void>; done: Promise<Held> } {
  let sent!: () => void;
  const allSent = new Promise<void>((resolve) => (sent = resolve));
  const count = Number(command.count);
  const headers = (command.headers ?? {}) as Record<string, string>;
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
  const statuses: Record<string, number> = {};
  const bodies = new Map<string, number>();
  let written = 0;
  const replies: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    replies.push(
      get(String(command.url), agent, headers, (req) =>
        req.once('finish', () => {
          if (++written === count) sent();
        }),
      ).then(
        (a) => {
          statuses[a.status] = (statuses[a.status] ?? 0) + 1;
          bodies.set(a.body, (bodies.get(a.body) ?? 0) + 1);
        },
        (error: Error) => {
          statuses[error.message] = (statuses[error.message] ?? 0) + 1;
        },
      ),
    );
  }
  const done = Promise.all(replies).then(() => {
    agent.destroy();
    return { statuses, distinctBodies: bodies.size, body: [...bodies.keys()][0] };
  });
  return { sent: allSent, done };
}

interface FollowGroup {
  name: string;
  path: string;
  mode: 'short' | 'long';
  clients: number;
  since: string;
  intervalMs: number;
  waitS: number;
}

interface ClientStats {
  requests: number;
  statuses: Record<string, number>;
  bytesRead: number;
  bytesWritten: number;
  delivered: number;
  latenciesMs: number[];
}

interface ChangesBody {
  changes: { id: string; op: string; row?: { body: string | null } }[];
}

const finishes = new Map<unknown, (lastIds: Record<string, string>) => void>();

async function follow(command: Record<string, unknown>): Promise<unknown> {
  const id = command.id;
  const base = String(command.base);
  const groups = command.groups as FollowGroup[];
  let lastIds: Record<string, string> | null = null;
  const finished = new Promise<void>((resolve) =>
    finishes.set(id, (ids) => {
      lastIds = ids;
      resolve();
    }),
  );
  /** The request each client has in flight, with its test for having everything. */
  const inFlight = new Map<ClientRequest, () => boolean>();

  const runClient = async (group: FollowGroup, n: number): Promise<ClientStats> => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set<Socket>();
    const stats: ClientStats = {
      requests: 0,
      statuses: {},
      bytesRead: 0,
      bytesWritten: 0,
      delivered: 0,
      latenciesMs: [],
    };
    // Every client is its own user, as separate browsers following one feed would be.
    const auth = { authorization: `Bearer ${group.name}-${n}` };
    let cursor = group.since;
    let etag = `"${cursor}"`;
    let seen = 0n;
    const done = () => lastIds !== null && seen >= BigInt(lastIds[group.path] ?? '0');
    // Short pollers start at random phases of their interval, like clients that opened at random.
    if (group.mode === 'short') await sleep(Math.random() * group.intervalMs);
    while (!done()) {
      const url =
        group.mode === 'short'
          ? `${base}${group.path}?since=${cursor}&wait=0`
          : `${base}${group.path}?since=${cursor}&wait=${group.waitS}`;
      const headers = group.mode === 'short' ? { ...auth, 'if-none-match': etag } : auth;
      let answer: Answer;
      let current: ClientRequest | undefined;
      try {
        answer = await get(url, agent, headers, (req) => {
          current = req;
          inFlight.set(req, done);
          req.once('socket', (s: Socket) => sockets.add(s));
        });
      } catch (error) {
        // A held poll aborted at the end, after this client had everything: not an error.
        if (done()) break;
        throw error;
      } finally {
        if (current) inFlight.delete(current);
      }
      const received = now();
      stats.requests++; // answered requests: a held poll aborted at the end is not counted
      stats.statuses[answer.status] = (stats.statuses[answer.status] ?? 0) + 1;
      if (answer.status === 200) {
        const body = JSON.parse(answer.body) as ChangesBody;
        for (const change of body.changes) {
          stats.delivered++;
          if (BigInt(change.id) > seen) seen = BigInt(change.id);
          const sentAt = Number(change.row?.body);
          if (Number.isFinite(sentAt)) stats.latenciesMs.push(received - sentAt);
        }
      } else if (answer.status !== 204 && answer.status !== 304) {
        throw new Error(`${group.name}: unexpected ${answer.status} ${answer.body.slice(0, 200)}`);
      }
      cursor = String(answer.headers['poll-cursor'] ?? cursor);
      etag = String(answer.headers.etag ?? etag);
      if (group.mode === 'short' && !done()) await sleep(group.intervalMs);
    }
    for (const s of sockets) {
      stats.bytesRead += s.bytesRead;
      stats.bytesWritten += s.bytesWritten;
    }
    agent.destroy();
    return stats;
  };

  // Once told the last ids: end the held polls of clients that already have everything.
  void finished.then(() => {
    for (const [req, hasAll] of inFlight) if (hasAll()) req.destroy();
  });

  const results = await Promise.all(
    groups.map(async (group) => {
      const clients = await Promise.all(
        Array.from({ length: group.clients }, (_, n) => runClient(group, n)),
      );
      return { name: group.name, path: group.path, mode: group.mode, clients };
    }),
  );
  finishes.delete(id);
  return results;
}

const holds = new Map<unknown, Promise<Held>>();
const follows = new Map<unknown, Promise<unknown>>();
serve({
  async hold(command) {
    const { sent, done } = hold(command);
    holds.set(command.id, done);
    await sent;
    return {};
  },
  held: ({ id }) => holds.get(id)!.finally(() => holds.delete(id)),
  follow(command) {
    const followed = follow(command);
    followed.catch(() => undefined); // reported by finish
    follows.set(command.id, followed);
    return {};
  },
  async finish({ id, lastIds }) {
    finishes.get(id)?.(lastIds as Record<string, string>);
    const groups = await follows.get(id)!;
    follows.delete(id);
    return { groups };
  },
}).ready();
