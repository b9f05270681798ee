import { randomBytes } from 'node:crypto';
import { PollingConfigError } from '../polling-config.error';

/**
 * Every name the module derives from `keyPrefix`, in one place. With a shared index (Redis) they
 * carry the change log's identity, so apps on different databases or schemas that share a Redis
 * and a key prefix never share an index, a bus channel or a leader lock.
 */
export interface IndexKeys {
  /** Prefix of every key of the index. */
  prefix: string;
  /** Redis pub/sub channel that links the instances' change buses. */
  busChannel: string;
  /** Name of the Postgres advisory lock the leading reader holds. */
  leaderLock: string;
  /**
   * The index's row in `polling_reader_state`, which keeps pruning off the rows it has not read.
   * An in-memory index is one per process: each needs a row of its own, or a replica that is
   * ahead would overwrite a lagging one's and prune what that one has not read yet.
   */
  readerState: string;
}

/**
 * `identity` is null for the in-memory index (nothing shared, nothing to tell apart). On a Redis
 * Cluster the identity is a hash tag (`polling:{3f2a…}:`): every key of the index and its bus
 * channel hash to one slot, so each Lua script (an append touches many feeds) stays on one node
 * and atomic, and the sharded bus channel lives beside the index it announces.
 */
export function indexKeys(
  keyPrefix: string,
  schema: string,
  identity: string | null,
  cluster = false,
): IndexKeys {
  // Redis hashes the first {…} of a key: braces in the prefix would take the tag's place.
  if (cluster && /[{}]/.test(keyPrefix)) {
    throw new PollingConfigError('keyPrefix must not contain { or } with a Redis Cluster');
  }
  const tagged = cluster ? `{${identity}}` : identity;
  const prefix = identity === null ? keyPrefix : `${keyPrefix}${tagged}:`;
  return {
    prefix,
    busChannel: `${prefix}bus`,
    leaderLock: `nestjs-polling:${schema}:${prefix}`,
    readerState:
      identity === null ? `${keyPrefix}memory:${randomBytes(6).toString('hex')}` : prefix,
  };
}
