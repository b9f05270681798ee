import { setTimeout as sleep } from 'node:timers/promises';
import { OwnedPostgres } from '../../support/owned-postgres';
import { OwnedRedisServer } from '../../support/redis-server';
import { TcpProxy } from '../../support/tcp-proxy';
import { createTestDatabase } from '../../support/test-database';
import { classify, type Classification } from './classify';
import { withClient } from './connections';
import { ExampleProcess, ensureExampleBuilt } from './example-process';
import { FAULTS, type FaultContext } from './faults';
import { Follower, type FollowMode } from './follower';
import { findLeader } from './instances';
import { TcpBalancer } from './tcp-balancer';
import { Writers } from './writers';

/** A follower must reach the newest change this soon after a fault ended. */
export const CATCH_UP_LIMIT_MS = 5000;
/** However large the channel has grown, a follower's reload ends within this. */
const RELOAD_LIMIT_MS = 60_000;

export interface FaultRun {
  fault: string;
  round: number;
  skipped: string | null;
  failures: string[];
  note: string;
  /** From the fault's end until every follower had its channel's newest change; null: never. */
  catchUpMs: number | null;
}

export interface CampaignResult {
  runs: FaultRun[];
  classification: Classification;
  followers: {
    name: string;
    mode: FollowMode;
    resyncs: number;
    errors: number;
    errorKinds: Map<string, number>;
    fellBack: boolean;
    stoppedWith: string | null;
  }[];
  writes: { acked: number; rolledBack: number; errors: number };
  ownedPostgres: string;
}

export interface CampaignOptions {
  /** Keep running rounds of all faults until this much time has passed (soak); default 1 round. */
  durationMs?: number;
  log?: (line: string) => void;
  /** Only the faults whose names start with one of these (e.g. ['4a', '6']); default all. */
  only?: string[];
}

const CHANNELS = ['alpha', 'beta', 'gamma'];
const FOLLOWERS: [string, FollowMode][] = [
  ['alpha', 'long'],
  ['alpha', 'sse'],
  ['beta', 'long'],
  ['beta', 'short'],
  ['gamma', 'long'],
  ['gamma', 'sse'],
];

/**
 * Waits until every follower has its channel's newest acknowledged change. A follower told to
 * refetch reloads its whole channel first: that reload is the app's work and grows with the
 * channel, so its time is taken out of the follower's catch-up and reported on its own. Returns
 * the slowest follower's catch-up (null: not within `limitMs`), the longest reload and who was last.
 */
export async function catchUp(
  writers: Writers,
  followers: Follower[],
  limitMs: number,
): Promise<{ ms: number | null; reloadMs: number; slowest: string }> {
  const started = Date.now();
  const targets = writers.lastAcked();
  const reloadBefore = new Map(followers.map((f) => [f, f.reloadMs()]));
  const reloading = (f: Follower) => f.reloadMs() - reloadBefore.get(f)!;
  const caughtUpMs = new Map<Follower, number>();
  let slowest = '';
  for (;;) {
    for (const f of followers) {
      const target = targets.get(f.channel);
      if (caughtUpMs.has(f) || (target !== undefined && !f.has(target))) continue;
      caughtUpMs.set(f, Date.now() - started - reloading(f));
    }
    const reloadMs = Math.max(0, ...followers.map(reloading));
    const behind = followers.filter((f) => !caughtUpMs.has(f));
    if (behind.length === 0) return { ms: Math.max(0, ...caughtUpMs.values()), reloadMs, slowest };
    slowest = behind.map((f) => f.name).join(', ');
    const overdue = behind.every((f) => Date.now() - started - reloading(f) >= limitMs);
    if (overdue || Date.now() - started >= limitMs + RELOAD_LIMIT_MS) {
      return { ms: null, reloadMs, slowest };
    }
    await sleep(20);
  }
}

/** fetch's "fetch failed" says nothing; its cause (ECONNRESET, a timeout) is what tells. */
function describeError(error: Error): string {
  const cause = error.cause as { code?: string; message?: string } | undefined;
  return cause ? `${error.message} (${cause.code ?? cause.message})` : error.message;
}

/** Everything the campaign starts, so that teardown stops what did start even after a failure. */
class Stack {
  private readonly closers: (() => Promise<unknown>)[] = [];
  add(close: () => Promise<unknown>): void {
    this.closers.unshift(close);
  }
  async close(): Promise<void> {
    for (const close of this.closers) await close().catch(() => undefined);
  }
}

/**
 * Runs two instances of the built example app on a throw-away PostgreSQL cluster (or the shared
 * server, without the faults that need a cluster of their own) and a throw-away redis-server,
 * with writers committing and SDK followers following through a load balancer, and injects every
 * fault in turn. Classifies every committed change per follower at the end.
 */
export async function runCampaign(options: CampaignOptions = {}): Promise<CampaignResult> {
  const log = options.log ?? (() => undefined);
  const stack = new Stack();
  try {
    ensureExampleBuilt();
    const cluster = await OwnedPostgres.start();
    let databaseUrl: string;
    let restartPostgres: FaultContext['restartPostgres'] = null;
    let ownedPostgres: string;
    if ('skipped' in cluster) {
      const db = await createTestDatabase();
      stack.add(() => db.drop());
      databaseUrl = db.url;
      ownedPostgres = `shared server (${cluster.skipped})`;
    } else {
      stack.add(() => cluster.destroy());
      await cluster.createDatabase('faults');
      databaseUrl = cluster.url('faults');
      restartPostgres = () => cluster.restart('fast');
      ownedPostgres = `throw-away cluster on port ${cluster.port}`;
    }
    const preparedTransactions = await supportsPreparedTransactions(databaseUrl);
    const redis = await OwnedRedisServer.start();
    stack.add(() => redis.stop());
    const pgPort = Number(new URL(databaseUrl).port || 5432);
    const instances: ExampleProcess[] = [];
    const readerProxies = new Map<ExampleProcess, TcpProxy>();
    for (const name of ['instance-a', 'instance-b']) {
      const proxy = await TcpProxy.start(pgPort);
      stack.add(() => proxy.close());
      const readerUrl = new URL(databaseUrl);
      readerUrl.port = String(proxy.port);
      const instance = await ExampleProcess.start(name, {
        DATABASE_URL: databaseUrl,
        READER_DATABASE_URL: readerUrl.toString(),
        REDIS_URL: redis.url,
        MIGRATE_ON_START: '1',
        POLL_MAX_HELD_PER_CLIENT: '1000',
        HEALTH_HORIZON_STALL_MS: '1000',
      });
      stack.add(() => instance.stop('SIGKILL'));
      instances.push(instance);
      readerProxies.set(instance, proxy);
    }
    const balancer = await TcpBalancer.start(instances.map((i) => i.port));
    stack.add(() => balancer.close());

    const followers = FOLLOWERS.map(
      ([channel, mode], n) =>
        new Follower(`${channel}/${mode}#${n}`, channel, mode, balancer.url, 'key-1'),
    );
    stack.add(() => Promise.all(followers.map((f) => f.stop())));
    await Promise.all(followers.map((f) => f.start()));
    const writers = new Writers(databaseUrl, CHANNELS, { writers: 3, pauseMs: 15 });
    stack.add(() => writers.close());
    writers.start();
    await sleep(1000);

    const context: FaultContext = {
      databaseUrl,
      restartPostgres,
      preparedTransactions,
      redis,
      instances,
      readerProxies,
      writers,
      channels: CHANNELS,
    };
    const runs: FaultRun[] = [];
    const selected = options.only
      ? FAULTS.filter((f) => options.only!.some((o) => f.name.startsWith(o)))
      : FAULTS;
    const deadline = Date.now() + (options.durationMs ?? 0);
    let round = 0;
    do {
      round++;
      for (const fault of selected) {
        const skipped = fault.skipReason(context);
        if (skipped) {
          if (round === 1) log(`SKIPPED ${fault.name}: ${skipped}`);
          runs.push({ fault: fault.name, round, skipped, failures: [], note: '', catchUpMs: null });
          continue;
        }
        writers.phase = fault.name;
        const outcome = await fault.inject(context).catch((error: Error) => ({
          failures: [`the fault itself failed: ${describeError(error)}`],
          note: '',
          repair: undefined,
        }));
        const {
          ms: catchUpMs,
          reloadMs,
          slowest,
        } = await catchUp(writers, followers, CATCH_UP_LIMIT_MS + 10_000);
        writers.phase = 'steady';
        const reload = reloadMs ? `; longest reload after a 409: ${reloadMs} ms` : '';
        const note = outcome.note + reload;
        runs.push({ fault: fault.name, round, skipped: null, ...outcome, note, catchUpMs });
        log(
          `round ${round} ${fault.name}: caught up in ${catchUpMs ?? 'never'} ms ` +
            `(last: ${slowest || '-'}); ${note}`,
        );
        await outcome.repair?.();
        await findLeader(instances);
        await sleep(500);
      }
    } while (Date.now() < deadline);

    await writers.stop();
    await catchUp(writers, followers, 10_000);
    await sleep(500); // anything still in flight (a duplicate, a stray id) arrives now
    const committed = await withClient(
      databaseUrl,
      async (c) =>
        (await c.query<{ id: string; channel: string }>('SELECT id::text, channel FROM messages'))
          .rows,
    );
    const phaseOrder = ['steady', ...FAULTS.map((f) => f.name)];
    return {
      runs,
      classification: classify(committed, writers.acked, followers, phaseOrder),
      followers: followers.map((f) => ({
        name: f.name,
        mode: f.mode,
        resyncs: f.resyncs,
        errors: f.errors,
        errorKinds: f.errorKinds,
        fellBack: f.fellBack,
        stoppedWith: f.stoppedWith?.message ?? null,
      })),
      writes: {
        acked: writers.acked.length,
        rolledBack: writers.rolledBack.size,
        errors: writers.errors,
      },
      ownedPostgres,
    };
  } finally {
    await stack.close();
  }
}

async function supportsPreparedTransactions(url: string): Promise<boolean> {
  return withClient(url, async (c) => {
    const { rows } = await c.query<{ n: string }>(
      `SELECT current_setting('max_prepared_transactions') AS n`,
    );
    return Number(rows[0].n) > 0;
  });
}
