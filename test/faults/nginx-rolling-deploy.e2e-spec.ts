import { setTimeout as sleep } from 'node:timers/promises';
import { NginxProcess } from '../support/nginx';
import { OwnedRedisServer } from '../support/redis-server';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { CATCH_UP_LIMIT_MS, catchUp } from './support/campaign';
import { classify, type Classification } from './support/classify';
import { withClient } from './support/connections';
import { ExampleProcess, ensureExampleBuilt } from './support/example-process';
import { Follower, type FollowMode } from './support/follower';
import { Writers } from './support/writers';

const CHANNELS = ['alpha', 'beta'];
const MODES: FollowMode[] = ['long', 'sse', 'batch'];

interface Restart {
  instance: string;
  exit: string;
  /** From the restarted instance serving again until every follower had the newest change. */
  catchUpMs: number | null;
}

/**
 * A rolling deploy behind the project's own docker/nginx.conf, run by Debian's nginx: two built
 * example instances share PostgreSQL and Redis; SDK followers (long poll, SSE, batch poll) follow
 * two channels through nginx while writers commit. Each instance in turn gets SIGTERM and is
 * started again. nginx must hide every stop from the clients (retrying what a stopping instance
 * refused or answered 503), and the followers must lose nothing.
 */
describe('rolling deploy behind nginx (docker/nginx.conf)', () => {
  let db: TestDatabase;
  let redis: OwnedRedisServer;
  const instances: ExampleProcess[] = [];
  let nginx: NginxProcess;
  let followers: Follower[] = [];
  let writers: Writers;
  const restarts: Restart[] = [];
  let classification: Classification;

  beforeAll(async () => {
    ensureExampleBuilt();
    db = await createTestDatabase();
    redis = await OwnedRedisServer.start();
    for (const name of ['app-a', 'app-b']) {
      instances.push(
        await ExampleProcess.start(name, {
          DATABASE_URL: db.url,
          REDIS_URL: redis.url,
          MIGRATE_ON_START: '1',
          POLL_MAX_HELD_PER_CLIENT: '1000',
          TRUST_PROXY: '1',
        }),
      );
    }
    nginx = await NginxProcess.start(instances.map((i) => i.port));
    followers = CHANNELS.flatMap((channel) =>
      MODES.map((mode) => new Follower(`${channel}/${mode}`, channel, mode, nginx.url, 'key-1')),
    );
    await Promise.all(followers.map((f) => f.start()));
    writers = new Writers(db.url, CHANNELS, { writers: 2, pauseMs: 20 });
    writers.start();
    await sleep(1000);

    for (const instance of instances) {
      writers.phase = `deploy ${instance.name}`;
      const exit = await instance.stop('SIGTERM');
      await sleep(500); // writes go on while it is away
      await instance.start();
      const { ms } = await catchUp(writers, followers, CATCH_UP_LIMIT_MS + 10_000);
      restarts.push({ instance: instance.name, exit: JSON.stringify(exit), catchUpMs: ms });
      writers.phase = 'steady';
      await sleep(1500); // nginx's fail_timeout (1 s) has passed: both instances take requests
    }

    await writers.stop();
    await catchUp(writers, followers, 10_000);
    await sleep(500); // anything still in flight (a duplicate, a stray id) arrives now
    const committed = await withClient(
      db.url,
      async (c) =>
        (await c.query<{ id: string; channel: string }>('SELECT id::text, channel FROM messages'))
          .rows,
    );
    classification = classify(committed, writers.acked, followers, [
      'steady',
      ...instances.map((i) => `deploy ${i.name}`),
    ]);
    process.stdout.write(
      `${JSON.stringify({ restarts, phases: classification.phases, log: statusCounts(nginx) })}\n`,
    );
    if (process.env.NGINX_ERRORS) {
      process.stdout.write(
        `${JSON.stringify(
          nginx
            .accessLog()
            .filter((l) => l.status >= 500 || l.upstreamStatus.includes(','))
            .slice(0, 60),
          null,
          1,
        )}\n`,
      );
    }
  }, 150_000);

  afterAll(async () => {
    await Promise.all(followers.map((f) => f.stop()));
    await writers?.close();
    await nginx?.stop();
    for (const instance of instances) await instance.stop('SIGKILL');
    await redis?.stop();
    await db?.drop();
  });

  it('stops each instance cleanly on SIGTERM (the example exits by the signal once closed)', () => {
    expect(restarts.map((r) => r.exit)).toEqual(
      instances.map(() => JSON.stringify({ code: null, signal: 'SIGTERM' })),
    );
  });

  it('loses no committed change, delivers nothing else, duplicates only across a refetch', () => {
    expect(classification.phases.filter((p) => p.lost > 0)).toEqual([]);
    expect(classification.unexpected).toEqual([]);
    expect(classification.phases.filter((p) => p.duplicatedOther > 0)).toEqual([]);
    const deployed = classification.phases.filter((p) => p.phase.startsWith('deploy'));
    expect(deployed.map((p) => p.committed).every((n) => n > 0)).toBe(true);
  });

  it('lets no 5xx reach a client: nginx retried what a stopping instance refused', () => {
    const answered = nginx.accessLog();
    expect(answered.length).toBeGreaterThan(50);
    expect(answered.filter((line) => line.status >= 500)).toEqual([]);
  });

  it(`brings every follower to the newest change within ${CATCH_UP_LIMIT_MS} ms of each restart`, () => {
    expect(restarts.filter((r) => r.catchUpMs === null || r.catchUpMs > CATCH_UP_LIMIT_MS)).toEqual(
      [],
    );
    expect(followers.filter((f) => f.stoppedWith !== null).map((f) => f.name)).toEqual([]);
  });
});

/** Answers per status, and how many needed a second upstream (e.g. `502, 200`): for the log. */
function statusCounts(nginx: NginxProcess): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const line of nginx.accessLog()) {
    const key = line.upstreamStatus.includes(',')
      ? `${line.status} after ${line.upstreamStatus}`
      : String(line.status);
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}
