import { randomBytes } from 'node:crypto';
import type Redis from 'ioredis';

const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/** The Redis the tests use: REDIS_URL or the local default. */
export function redisUrl(): string {
  return process.env.REDIS_URL || DEFAULT_REDIS_URL;
}

/** A key prefix no other test (or test run) uses, e.g. `polling-test:index:1234:a1b2c3d4:`. */
export function uniquePrefix(label: string): string {
  return `polling-test:${label}:${process.pid}:${randomBytes(4).toString('hex')}:`;
}

/** Escapes glob characters so SCAN MATCH treats the prefix literally. */
function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}

/**
 * Deletes every key starting with `prefix` (SCAN MATCH prefix* + DEL; never FLUSHALL — the Redis
 * may be shared). Returns how many keys were deleted.
 */
export async function deleteKeys(client: Redis, prefix: string): Promise<number> {
  if (!prefix) throw new Error('deleteKeys: refusing an empty prefix');
  const pattern = `${globEscape(prefix)}*`;
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
    cursor = next;
    if (keys.length) deleted += await client.del(...keys);
  } while (cursor !== '0');
  return deleted;
}
