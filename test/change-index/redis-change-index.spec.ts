import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { RedisChangeIndex } from '../../src/change-index/redis-change-index';
import { describeChangeIndexContract } from './change-index.contract';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

let client: Redis | undefined;

function redis(): Redis {
  client ??= new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  return client;
}

function uniquePrefix(): string {
  return `test:${process.pid}:${randomBytes(6).toString('hex')}:`;
}

/** Keys under a prefix; test prefixes hold no glob characters. */
async function keysUnder(prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis().scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    keys.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  return keys;
}

async function deleteUnder(prefix: string): Promise<void> {
  const keys = await keysUnder(prefix);
  if (keys.length > 0) await redis().del(...keys);
}

afterAll(async () => {
  await client?.quit();
});

describeChangeIndexContract('RedisChangeIndex', async () => {
  const prefix = uniquePrefix();
  return { index: new RedisChangeIndex(redis(), prefix), cleanup: () => deleteUnder(prefix) };
});

describe('RedisChangeIndex', () => {
  let prefix: string;
  let index: RedisChangeIndex;

  beforeEach(() => {
    prefix = uniquePrefix();
    index = new RedisChangeIndex(redis(), prefix);
  });

  afterEach(async () => {
    await deleteUnder(prefix);
  });

  it('is shared', () => {
    expect(index.shared).toBe(true);
  });

  it('reports loss, never an empty success, after its keys vanish', async () => {
    await index.startGeneration('g', { readerXid: '0', readerId: '0' });
    const appended = await index.append({
      generation: 'g',
      expectedPosition: 0,
      changes: [{ feed: 'a', resourceId: '1' }],
      readerXid: '10',
      readerId: '1',
    });
    expect(appended.ok).toBe(true);
    expect((await keysUnder(prefix)).sort()).toEqual([
      `${prefix}feed:a`,
      `${prefix}marks`,
      `${prefix}meta`,
      `${prefix}oldest`,
    ]);

    await deleteUnder(prefix); // what FLUSHALL or a restart without persistence does to us

    expect(await index.head()).toBeNull();
    expect(await index.feedPosition('a')).toEqual({ kind: 'unavailable' });
    expect(await index.changesSince('a', 'g', 0, 10)).toEqual({ kind: 'unavailable' });
    expect(
      await index.append({
        generation: 'g',
        expectedPosition: 1,
        changes: [{ feed: 'a', resourceId: '2' }],
        readerXid: '11',
        readerId: '1',
      }),
    ).toEqual({ ok: false, reason: 'lost' });
    await index.trim(1);
    // None of these may recreate keys that would pass for a valid (empty) index.
    expect(await keysUnder(prefix)).toEqual([]);
  });

  it('keeps positions exact beyond Lua number formatting (%.14g)', async () => {
    const big = 2 ** 52 + 1;
    await index.startGeneration('g', { readerXid: '0', readerId: '0' });
    // Jump the head by hand: appending 2^52 changes is not an option.
    await redis().hset(`${prefix}meta`, 'position', String(big));
    const result = await index.append({
      generation: 'g',
      expectedPosition: big,
      changes: [{ feed: 'a', resourceId: '1' }],
      readerXid: '1',
      readerId: '1',
    });
    expect(result).toMatchObject({ ok: true, head: { position: big + 1 } });
    expect(await index.feedPosition('a')).toMatchObject({ position: big + 1 });
    expect(await index.changesSince('a', 'g', big, 10)).toMatchObject({
      changed: [{ resourceId: '1', position: big + 1 }],
    });
  });

  it('falls back to EVAL when the server lacks the script', async () => {
    const noscript = new Error('NOSCRIPT No matching script. Please use EVAL.');
    const fake = {
      evalsha: jest.fn().mockRejectedValue(noscript),
      eval: jest.fn().mockResolvedValue(['unavailable']),
    };
    const fakeIndex = new RedisChangeIndex(fake as unknown as Redis, 'p:');
    expect(await fakeIndex.feedPosition('a')).toEqual({ kind: 'unavailable' });
    expect(fake.eval).toHaveBeenCalledTimes(1);
    expect(fake.eval.mock.calls[0].slice(1, 5)).toEqual([3, 'p:meta', 'p:feed:a', 'p:floors']);
  });

  it('quits the client on close only when it owns it', async () => {
    const own = new Redis(REDIS_URL);
    const borrowed = new Redis(REDIS_URL);
    try {
      await new RedisChangeIndex(own, prefix, { ownsClient: true }).close();
      await new RedisChangeIndex(borrowed, prefix).close();
      expect(own.status).toBe('end');
      expect(await borrowed.ping()).toBe('PONG');
    } finally {
      own.disconnect();
      await borrowed.quit();
    }
  });
});
