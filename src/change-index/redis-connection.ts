import type { Redis, RedisOptions } from 'ioredis';
import type { RedisConnection } from '../polling-options.interface';
import { loadOptionalPeer } from '../optional-peer';
import { PollingConfigError } from '../polling-config.error';

/** The module's Redis client and whether the module created it (then it also closes it). */
export interface RedisHandle {
  client: Redis;
  owned: boolean;
}

/**
 * Connects at start-up and fails loudly: a configured Redis that is unreachable is an error,
 * never a silent fall-back to the in-memory index.
 */
export async function connectRedis(
  connection: RedisConnection | undefined,
): Promise<RedisHandle | null> {
  if (!connection) return null;
  if ('client' in connection) return { client: connection.client as Redis, owned: false };
  // ioredis is an optional peer dependency: load it only when Redis is configured.
  const ioredis = loadOptionalPeer<typeof import('ioredis')>('ioredis');
  if (!ioredis) {
    throw new PollingConfigError(
      'redis is configured but the optional peer dependency ioredis is not installed ' +
        '(npm i ioredis@^5)',
    );
  }
  const IORedis = ioredis.default;
  // Fail a request after a short retry instead of queueing it for ever while Redis is away.
  const base = { lazyConnect: true, maxRetriesPerRequest: 2 };
  const client =
    'url' in connection
      ? new IORedis(connection.url, base)
      : new IORedis({ ...base, ...(connection.options as RedisOptions) });
  client.on('error', () => undefined); // reported through failed commands and health instead
  try {
    await client.connect();
  } catch (error) {
    client.disconnect();
    throw new PollingConfigError(`cannot connect to Redis: ${(error as Error).message}`);
  }
  return { client, owned: true };
}
