import Redis from 'ioredis';
import { RedisChangeIndex } from '../../src/change-index/redis-change-index';
import type { IndexedChange } from '../../src/change-index/change-index.interface';
import { OwnedRedisServer } from '../support/redis-server';

const FEEDS = 100_000;
const PREFIX = 'bounded:';
/** Generous: a bounded trim step takes a few ms; one pass over 100k feeds takes hundreds. */
const SLOW_CALL_US = 50_000;

/**
 * Bounded Redis memory (issue 13): feeds that age out leave every index structure, and a trim of
 * any size is many short Redis calls. A throw-away server, so the test may change its slowlog.
 */
describe('RedisChangeIndex memory over 100k partitioned feeds', () => {
  let server: OwnedRedisServer;
  let redis: Redis;

  beforeAll(async () => {
    server = await OwnedRedisServer.start();
    redis = new Redis(server.url);
  });

  afterAll(async () => {
    await redis?.quit();
    await server?.stop();
  });

  async function keyCount(): Promise<number> {
    return Number(await redis.dbsize());
  }

  async function fill(index: RedisChangeIndex, writtenAt: number): Promise<number> {
    let position = (await index.head())!.position;
    for (let from = 0; from < FEEDS; from += 5000) {
      const changes: IndexedChange[] = [];
      for (let i = from; i < from + 5000; i++) changes.push({ feed: `room:${i}`, resourceId: '1' });
      const result = await index.append({
        generation: 'g',
        expectedPosition: position,
        changes,
        readerXid: '1',
        readerId: String(from),
        writtenAt,
      });
      if (!result.ok) throw new Error(`append refused: ${result.reason}`);
      position = result.head.position;
    }
    return position;
  }

  it('drops aged-out feeds from every structure in short calls, and trims by age after a restart', async () => {
    const t0 = Date.now() - 60_000;
    let index = new RedisChangeIndex(redis, PREFIX);
    await index.startGeneration('g', { readerXid: '0', readerId: '0' });
    const filled = await fill(index, t0);
    const live = await index.append({
      generation: 'g',
      expectedPosition: filled,
      changes: [{ feed: 'room:live', resourceId: '1' }],
      readerXid: '2',
      readerId: '1',
      writtenAt: t0 + 30_000,
    });
    expect(live.ok).toBe(true);
    expect(await keyCount()).toBeGreaterThan(FEEDS);

    // A new leader: nothing of the old one's memory, only what the index stores.
    index = new RedisChangeIndex(redis, PREFIX);
    const expired = await index.expiredPosition(t0 + 10_000);
    expect(expired).toBe(FEEDS);

    await redis.config('SET', 'slowlog-log-slower-than', String(SLOW_CALL_US));
    await redis.slowlog('RESET');
    const calls = Number((await redis.info('stats')).match(/total_commands_processed:(\d+)/)![1]);
    await index.trim(expired);
    const after = Number((await redis.info('stats')).match(/total_commands_processed:(\d+)/)![1]);

    const slow = (await redis.slowlog('GET', 128)) as [number, number, number, string[]][];
    expect(slow.map(([, , us, command]) => `${command[0]} ${us}us`)).toEqual([]);
    expect(after - calls).toBeGreaterThan(FEEDS / 1000); // many short steps, not one long one

    // Only the live feed is left: no per-feed key, set member, floor or mark for the others.
    expect(await redis.zcard(`${PREFIX}oldest`)).toBe(1);
    expect(await redis.hlen(`${PREFIX}floors`)).toBe(0);
    expect(await redis.zcard(`${PREFIX}marks`)).toBe(1);
    expect((await redis.keys(`${PREFIX}*`)).sort()).toEqual([
      `${PREFIX}feed:room:live`,
      `${PREFIX}marks`,
      `${PREFIX}meta`,
      `${PREFIX}oldest`,
    ]);
    // An aged-out feed answers from the floor: old cursors refetch, current ones stay valid.
    expect(await index.feedPosition('room:7')).toMatchObject({ position: FEEDS, floor: FEEDS });
    expect(await index.changesSince('room:7', 'g', 7, 10)).toMatchObject({ kind: 'refetch' });
    expect(await index.changesSince('room:7', 'g', FEEDS, 10)).toMatchObject({ changed: [] });
    expect(await index.changesSince('room:live', 'g', FEEDS, 10)).toMatchObject({
      changed: [{ resourceId: '1', position: FEEDS + 1 }],
    });
  });

  it('starts a new generation over 100k feeds in short calls', async () => {
    await redis.flushall(); // a throw-away server of this test's own
    const index = new RedisChangeIndex(redis, PREFIX);
    await index.startGeneration('g', { readerXid: '0', readerId: '0' });
    await fill(index, Date.now());
    expect(await keyCount()).toBeGreaterThan(FEEDS);

    // A restored database or a lost head: the old generation's 100k feeds are dropped.
    await redis.config('SET', 'slowlog-log-slower-than', String(SLOW_CALL_US));
    await redis.slowlog('RESET');
    await index.startGeneration('g2', { readerXid: '5', readerId: '6' });
    const slow = (await redis.slowlog('GET', 128)) as [number, number, number, string[]][];
    expect(slow.map(([, , us, command]) => `${command[0]} ${us}us`)).toEqual([]);

    expect((await redis.keys(`${PREFIX}*`)).sort()).toEqual([`${PREFIX}meta`]);
    expect(await index.head()).toEqual({
      generation: 'g2',
      position: 0,
      readerXid: '5',
      readerId: '6',
      floor: 0,
    });
    expect(await index.feedPosition('room:7')).toMatchObject({ position: 0, floor: 0 });
  });

  it('keeps the floors of 100k quiet feeds until the forget line passes them, in short calls', async () => {
    await redis.flushall(); // a throw-away server of this test's own
    const index = new RedisChangeIndex(redis, PREFIX);
    await index.startGeneration('g', { readerXid: '0', readerId: '0' });
    const filled = await fill(index, Date.now());

    await redis.config('SET', 'slowlog-log-slower-than', String(SLOW_CALL_US));
    await redis.slowlog('RESET');
    await index.trim(filled, 0);
    // Every feed key is gone; each feed keeps only its floor, so its client's cursor stays valid.
    expect(await redis.keys(`${PREFIX}feed:*`)).toEqual([]);
    expect(await redis.zcard(`${PREFIX}gone`)).toBe(FEEDS);
    expect(await index.changesSince('room:7', 'g', 8, 10)).toMatchObject({ changed: [] });
    expect(await index.changesSince('room:7', 'g', 7, 10)).toMatchObject({ kind: 'refetch' });

    await index.trim(filled, filled);
    const slow = (await redis.slowlog('GET', 128)) as [number, number, number, string[]][];
    expect(slow.map(([, , us, command]) => `${command[0]} ${us}us`)).toEqual([]);
    expect((await redis.keys(`${PREFIX}*`)).sort()).toEqual([`${PREFIX}meta`]);
    expect(await index.changesSince('room:7', 'g', 8, 10)).toMatchObject({ kind: 'refetch' });
    expect(await index.changesSince('room:7', 'g', filled, 10)).toMatchObject({ changed: [] });
  });
});
