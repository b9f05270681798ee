import { setTimeout as sleep } from 'node:timers/promises';
import { Agent } from 'node:http';
import { Client } from 'pg';
import { send } from '../../support/http-get';
import type { OwnedRedisServer } from '../../support/redis-server';
import type { TcpProxy } from '../../support/tcp-proxy';
import { waitFor } from '../../support/wait-for';
import { withClient, withRedis } from './connections';
import type { ExampleProcess } from './example-process';
import { findLeader, heldRequests, readerHealth } from './instances';
import type { Writers } from './writers';

/** What a fault can reach: the parts of the system under test, all owned by this suite. */
export interface FaultContext {
  databaseUrl: string;
  /** Restarts PostgreSQL; null when the suite runs on a shared server it must not restart. */
  restartPostgres: (() => Promise<void>) | null;
  /** Whether PREPARE TRANSACTION works (max_prepared_transactions > 0). */
  preparedTransactions: boolean;
  redis: OwnedRedisServer;
  instances: ExampleProcess[];
  /** Each instance's change-reader connection goes through its own proxy. */
  readerProxies: Map<ExampleProcess, TcpProxy>;
  writers: Writers;
  channels: string[];
}

/** What a fault reports besides the deliveries: checks of its own, and how to undo it. */
export interface FaultOutcome {
  /** Checks that must hold (each message says what failed); empty when all held. */
  failures: string[];
  /** Facts for the table's note column. */
  note: string;
  /** Brings the system back to two instances after the catch-up was measured. */
  repair?: () => Promise<void>;
}

export interface Fault {
  name: string;
  /** Why the fault cannot run here, or null. */
  skipReason(context: FaultContext): string | null;
  /** Injects the fault; resolves when the fault has ended. */
  inject(context: FaultContext): Promise<FaultOutcome>;
}

const runs = () => null;

/** The backend of the leader's change reader: the session holding LISTEN and the leader lock. */
async function terminateListener(context: FaultContext): Promise<number> {
  return withClient(context.databaseUrl, async (admin) => {
    const { rows } = await admin.query<{ pid: number }>(
      `SELECT a.pid, pg_terminate_backend(a.pid)
         FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid
        WHERE a.datname = current_database() AND a.application_name = 'nestjs-polling reader'
          AND l.locktype = 'advisory' AND l.granted`,
    );
    return rows.length;
  });
}

const WAKE_CHECK_CHANNEL = 'wake-check';
const WAKE_LIMIT_MS = 3000;

/**
 * A long poll held on every instance on a channel the writers leave alone, so that the one change
 * the fault commits there is the only thing that can wake them: a notice lost in the fault shows
 * as a poll that sleeps on (other channels' traffic would hide it).
 */
async function holdOnEveryInstance(context: FaultContext) {
  const headers = { Authorization: 'Bearer key-2' };
  const running = context.instances.filter((i) => i.running);
  const polls = await Promise.all(
    running.map(async (instance) => {
      const feed = `${instance.url}/channels/${WAKE_CHECK_CHANNEL}/changes`;
      const { cursor } = (await (await fetch(feed, { headers })).json()) as { cursor: string };
      const before = await heldRequests(instance);
      const answer = fetch(`${feed}?since=${encodeURIComponent(cursor)}&wait=10`, { headers })
        .then(async (res) => ({ status: res.status, body: await res.text(), at: Date.now() }))
        .catch((error: Error) => ({ status: 0, body: error.message, at: Date.now() }));
      await waitFor(async () => (await heldRequests(instance)) > before, { intervalMs: 20 });
      return { instance, answer };
    }),
  );
  /** Failures after `id` committed at `committedAt`: a poll not woken with it in time. */
  return async (id: string, committedAt: number): Promise<{ failures: string[]; note: string }> => {
    const answers = await Promise.all(polls.map((p) => p.answer));
    const failures: string[] = [];
    const woke = answers.map((a, n) => {
      const ms = a.at - committedAt;
      if (a.status !== 200 || !a.body.includes(`"${id}"`) || ms > WAKE_LIMIT_MS) {
        failures.push(`${polls[n].instance.name}'s held poll: ${a.status} after ${ms} ms`);
      }
      return `${ms} ms`;
    });
    return {
      failures,
      note: `held polls on ${answers.length} instances woke in ${woke.join(', ')}`,
    };
  };
}

const listenerKilled: Fault = {
  name: '1 LISTEN backend terminated',
  skipReason: runs,
  async inject(context) {
    const wokenBy = await holdOnEveryInstance(context);
    // Killed first, then the commit: it lands while the reader reconnects, without its LISTEN.
    const killed = await terminateListener(context);
    const id = await context.writers.writeOne(WAKE_CHECK_CHANNEL);
    const wake = await wokenBy(id, Date.now());
    return {
      failures: [
        ...(killed === 1 ? [] : [`expected to terminate 1 listener backend, found ${killed}`]),
        ...wake.failures,
      ],
      note: `pg_terminate_backend while a change commits; ${wake.note}`,
    };
  },
};

const halfOpenListener: Fault = {
  name: '2 half-open listener socket',
  skipReason: runs,
  async inject(context) {
    const leader = await findLeader(context.instances);
    const proxy = context.readerProxies.get(leader)!;
    const frozen = proxy.openConnections;
    proxy.freezeOpenConnections();
    // Long enough for the reader's statement timeout (5 s) to notice the silent socket.
    await sleep(6000);
    return {
      failures: frozen > 0 ? [] : ['the leader had no reader connection through its proxy'],
      note: `${frozen} connection(s) of the leader frozen for 6 s, never closed`,
    };
  },
};

const postgresRestarted: Fault = {
  name: '3 PostgreSQL restarted (-m fast)',
  skipReason: (context) =>
    context.restartPostgres
      ? null
      : 'no throw-away cluster (initdb not usable here): the shared server is not restarted',
  async inject(context) {
    const started = Date.now();
    await context.restartPostgres!();
    return { failures: [], note: `restart took ${Date.now() - started} ms` };
  },
};

const redisFlushed: Fault = {
  name: '4a Redis FLUSHDB',
  skipReason: runs,
  async inject(context) {
    await withRedis(context.redis.url, (client) => client.flushdb());
    return { failures: [], note: 'the index is gone: followers must be told to refetch' };
  },
};

const redisRestarted: Fault = {
  name: '4b Redis restarted (SIGKILL, empty)',
  skipReason: runs,
  async inject(context) {
    const instance = context.instances.find((i) => i.running)!;
    const feed = `${instance.url}/channels/${context.channels[0]}/changes`;
    const headers = { Authorization: 'Bearer key-2' };
    const { cursor } = (await (await fetch(feed, { headers })).json()) as { cursor: string };
    await context.redis.stop();
    // While Redis is away a poll is refused, briefly: the index comes back within a backstop read.
    const refused = await fetch(`${feed}?since=${encodeURIComponent(cursor)}&wait=0`, { headers });
    const retryAfter = refused.headers.get('retry-after');
    await refused.text();
    await context.redis.start();
    const failures =
      refused.status === 503 && retryAfter === '1'
        ? []
        : [`a poll while Redis was down answered ${refused.status}, Retry-After ${retryAfter}`];
    return {
      failures,
      note: `redis-server killed (a poll meanwhile: ${refused.status}, Retry-After ${retryAfter}), started empty on the same port`,
    };
  },
};

const subscriberKilled: Fault = {
  name: '5 pub/sub connection killed',
  skipReason: runs,
  async inject(context) {
    const wokenBy = await holdOnEveryInstance(context);
    // Killed first, then the commit: its notice is published while the subscribers reconnect.
    const killed = await withRedis(context.redis.url, (c) =>
      c.call('CLIENT', 'KILL', 'TYPE', 'pubsub'),
    );
    const id = await context.writers.writeOne(WAKE_CHECK_CHANNEL);
    const wake = await wokenBy(id, Date.now());
    return {
      failures: [
        ...(Number(killed) >= 1 ? [] : ['no pub/sub connection was there to kill']),
        ...wake.failures,
      ],
      note: `CLIENT KILL TYPE pubsub killed ${Number(killed)} while a change commits; ${wake.note}`,
    };
  },
};

const leaderKilled: Fault = {
  name: '6 leader instance SIGKILLed',
  skipReason: runs,
  async inject(context) {
    const leader = await findLeader(context.instances);
    await leader.stop('SIGKILL');
    // Throws (a failed fault) unless a running instance reports itself the leader within 15 s.
    const successor = await findLeader(context.instances);
    return {
      failures: [],
      note: `${successor.name} took over`,
      repair: () => leader.start(),
    };
  },
};

interface HeldReply {
  status: number | null;
  error: string | null;
}

/** A long poll on its own socket; resolves with the answer's status or the socket error. */
function holdPoll(url: string, apiKey: string): Promise<HeldReply> {
  const agent = new Agent({ keepAlive: false });
  return send(url, agent, { Authorization: `Bearer ${apiKey}` }).reply.then(
    (reply) => ({ status: reply.status, error: null }),
    (error: Error) => ({ status: null, error: error.message }),
  );
}

const HELD_AT_SIGTERM = 200;

/**
 * A task the worker has finished: its feed never changes again, and no follower polls the `tasks`
 * feed, so the instance's held count for that feed is exactly the polls this fault holds on it.
 */
async function finishedTaskFeed(url: string, apiKey: string): Promise<string> {
  const headers = { Authorization: `Bearer ${apiKey}`, 'Content-Type': 'application/json' };
  const created = await fetch(`${url}/tasks`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ input: 'held at sigterm' }),
  });
  const { id } = (await created.json()) as { id: string };
  let since = '';
  await waitFor(
    async () => {
      const poll = await fetch(`${url}/tasks/${id}`, { headers });
      const body = (await poll.json()) as { task: { status: string }; cursor: string };
      since = body.cursor;
      return body.task.status === 'done';
    },
    { timeoutMs: 15_000, intervalMs: 100, message: 'the task was not done' },
  );
  // The task is read from the database, its cursor from the index, which may not have the last
  // change yet: follow until a short wait finds nothing newer, so the polls below are held.
  await waitFor(
    async () => {
      const poll = await fetch(`${url}/tasks/${id}?since=${encodeURIComponent(since)}&wait=1`, {
        headers,
      });
      if (poll.status === 204) return true;
      since = ((await poll.json()) as { cursor: string }).cursor;
      return false;
    },
    { timeoutMs: 15_000, intervalMs: 0, message: "the task's feed never went quiet" },
  );
  return `${url}/tasks/${id}?since=${encodeURIComponent(since)}&wait=30`;
}

const sigtermWithHeldPolls: Fault = {
  name: '7 SIGTERM with 200 held polls',
  skipReason: runs,
  async inject(context) {
    const target = context.instances.find((i) => i.running)!;
    const feed = await finishedTaskFeed(target.url, 'key-2');
    // Replies that come back before SIGTERM say why a poll was not held (a 429, a reset).
    const early: HeldReply[] = [];
    const replies = Array.from({ length: HELD_AT_SIGTERM }, () =>
      holdPoll(feed, 'key-2').then((reply) => (early.push(reply), reply)),
    );
    let held = 0;
    await waitFor(async () => (held = await heldRequests(target, 'tasks')) === HELD_AT_SIGTERM, {
      timeoutMs: 10_000,
      intervalMs: 50,
    }).catch(() => {
      const seen = early.map((r) => r.status ?? r.error).join(', ') || 'none';
      throw new Error(
        `the 200 polls were not all held: ${held} held after 10 s; answered early: ${seen}`,
      );
    });
    const exit = await target.stop('SIGTERM');
    const answers = await Promise.all(replies);
    const resets = answers.filter((a) => a.error !== null || a.status === null);
    const statuses = new Map<number, number>();
    for (const a of answers)
      if (a.status) statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
    const failures: string[] = [];
    if (resets.length > 0)
      failures.push(`${resets.length} of ${HELD_AT_SIGTERM} polls saw ${resets[0].error}`);
    const bad = [...statuses.keys()].filter((s) => s !== 200 && s !== 204);
    if (bad.length > 0) failures.push(`answers with status ${bad.join(', ')}`);
    return {
      failures,
      note:
        `${HELD_AT_SIGTERM} polls: ${[...statuses].map(([s, n]) => `${n}×${s}`).join(' ')}, ` +
        `${resets.length} reset; exit ${exit.signal ?? exit.code}`,
      repair: () => target.start(),
    };
  },
};

async function insertUncommitted(client: Client, channel: string): Promise<string> {
  const { rows } = await client.query<{ id: string }>(
    `INSERT INTO messages (channel, author, body) VALUES ($1, 'held-open', 'late') RETURNING id`,
    [channel],
  );
  return rows[0].id;
}

let preparedCount = 0;

const horizonHeld: Fault = {
  name: '8 long transaction + forgotten PREPARE',
  skipReason: runs,
  async inject(context) {
    const failures: string[] = [];
    const long = new Client({ connectionString: context.databaseUrl });
    long.on('error', () => undefined); // a failure shows in the next statement
    await long.connect();
    await long.query('BEGIN');
    const longId = await insertUncommitted(long, context.channels[0]);
    let prepared: { gid: string; id: string } | null = null;
    if (context.preparedTransactions) {
      prepared = await withClient(context.databaseUrl, async (client) => {
        await client.query('BEGIN');
        const id = await insertUncommitted(client, context.channels[1]);
        const gid = `faults-forgotten-${process.pid}-${++preparedCount}`;
        await client.query(`PREPARE TRANSACTION '${gid}'`);
        return { gid, id }; // the session ends; the prepared transaction stays, holding the horizon
      });
    }
    await long.query('SELECT 1'); // the long transaction has a snapshot and an xid now
    // Writers go on committing behind it; /health must report the stall (threshold 1 s here).
    const leader = await findLeader(context.instances);
    let health = await readerHealth(leader);
    const deadline = Date.now() + 5000;
    while (health.state !== 'degraded' && Date.now() < deadline) {
      await sleep(200);
      health = await readerHealth(leader);
    }
    if (health.state !== 'degraded' || health.status !== 503 || health.heldBackRows === 0) {
      failures.push(`health during the stall: ${JSON.stringify(health)}`);
    }
    await long.query('COMMIT');
    await long.end();
    context.writers.recordCommitted(longId, context.channels[0]);
    if (prepared) {
      await withClient(context.databaseUrl, (c) => c.query(`COMMIT PREPARED '${prepared!.gid}'`));
      context.writers.recordCommitted(prepared.id, context.channels[1]);
    }
    return {
      failures,
      note:
        `health ${health.status} ${health.state}, ${health.heldBackRows} rows held back` +
        (prepared ? '' : '; PREPARE skipped: max_prepared_transactions is 0 on this server'),
    };
  },
};

/** The faults in the order one round runs them. */
export const FAULTS: Fault[] = [
  listenerKilled,
  halfOpenListener,
  subscriberKilled,
  redisFlushed,
  redisRestarted,
  horizonHeld,
  postgresRestarted,
  leaderKilled,
  sigtermWithHeldPolls,
];
