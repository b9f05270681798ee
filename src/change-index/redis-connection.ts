import type { Cluster, ClusterOptions, Redis, RedisOptions } from 'ioredis';
import type { RedisConnection } from '../polling-options.interface';
import { loadOptionalPeer } from '../optional-peer';
import { PollingConfigError } from '../polling-config.error';

/** A single Redis server or a Redis Cluster: the commands the index and the bus use are alike. */
export type RedisClient = Redis | Cluster;

/** The module's Redis client and whether the module created it (then it also closes it). */
export interface RedisHandle {
  client: RedisClient;
  owned: boolean;
}

/** True for a Redis Cluster client: its keys need one hash tag, its bus sharded pub/sub. */
export function isCluster(client: RedisClient): client is Cluster {
  return (client as { isCluster?: boolean }).isCluster === true;
}

/**
 * Connects at start-up and fails loudly: a configured Redis that is unreachable is an error,
 * never a silent fall-back to the in-memory index.
 */
export async function connectRedis(
  connection: RedisConnection | undefined,
): Promise<RedisHandle | null> {
  if (!connection) return null;
  if ('client' in connection) return { client: connection.client as RedisClient, owned: false };
  // ioredis is an optional peer dependency: load it only when Redis is configured.
  const ioredis = loadOptionalPeer<typeof import('ioredis')>('ioredis');
  if (!ioredis) {
    throw new PollingConfigError(
      'redis is configured but the optional peer dependency ioredis is not installed ' +
        '(npm i ioredis@^5)',
    );
  }
  // Fail a request after a short retry instead of queueing it for ever while Redis is away.
  const base = { lazyConnect: true, maxRetriesPerRequest: 2 };
  let client: RedisClient;
  if ('cluster' in connection) {
    const options = (connection.options ?? {}) as ClusterOptions;
    client = new ioredis.Cluster(connection.cluster, {
      ...options,
      lazyConnect: true,
      redisOptions: { maxRetriesPerRequest: 2, ...options.redisOptions },
    });
  } else {
    client =
      'url' in connection
        ? new ioredis.default(connection.url, base)
        : new ioredis.default({ ...base, ...(connection.options as RedisOptions) });
  }
  client.on('error', () => undefined); // reported through failed commands and health instead
  try {
    await client.connect();
  } catch (error) {
    client.disconnect();
    throw new PollingConfigError(`cannot connect to Redis: ${(error as Error).message}`);
  }
  return { client, owned: true };
}
