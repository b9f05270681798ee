import type { ClientConfig } from 'pg';
import type { Redis, RedisOptions } from 'ioredis';
import type { DataSource } from 'typeorm';

/** A table whose writes become feeds. */
export interface TrackedTable {
  /** Table name, optionally schema-qualified (`public.messages`). */
  table: string;
  /** Primary-key column; the resource id of each change. Default `id`. */
  key?: string;
  /**
   * Column that splits the table into feeds, one per value: `messages` by `channel` gives the
   * feeds `messages:general`, `messages:random`, ... Without it the whole table is one feed.
   */
  partition?: string;
  /** Feed name (prefix). Default: the table name without schema. */
  feed?: string;
}

export type PostgresConnection =
  | { url: string }
  | { config: ClientConfig }
  /** Reuse the app's TypeORM DataSource settings; the reader still opens its own connection. */
  | { dataSource: DataSource };

export type RedisConnection =
  | { url: string }
  | { options: RedisOptions }
  /** An existing client: the module duplicates it for pub/sub and never closes it. */
  | { client: Redis };

export interface RetentionOptions {
  /** Keep change-log rows at least this long. */
  maxAgeMs?: number;
  /** Keep at most this many change-log rows. */
  maxRows?: number;
}

export interface ReaderTuning {
  /** Rows per read statement. Default 5000. */
  batchSize?: number;
  /** Read even without a NOTIFY this often; doubles as the connection heartbeat. Default 1000. */
  backstopMs?: number;
  /** Client-side timeout of every reader statement; a half-open socket fails here. Default 5000. */
  queryTimeoutMs?: number;
  /** How often a follower tries to become the leader. Default 500. */
  leaderRetryMs?: number;
  /** How often the leader prunes the change log past retention. Default 60000. */
  pruneIntervalMs?: number;
}

export interface PollingModuleOptions {
  postgres: PostgresConnection;
  /** Absent: an in-memory change index (one instance only). */
  redis?: RedisConnection;
  tables: TrackedTable[];
  /** Default: one day. */
  retention?: RetentionOptions;
  /** Prefix of every Redis key and the leader-election lock. Default `polling:`. */
  keyPrefix?: string;
  /** Schema that holds the change log and its functions. Default `public`. */
  schema?: string;
  /**
   * Install the change log and start tracking `tables` at startup (idempotent) instead of relying
   * on migrations. Default false.
   */
  installSchema?: boolean;
  reader?: ReaderTuning;
}
