import type { PollingRequest } from './polling-request.interface';
import type {
  PostgresClientConfig,
  RedisClientLike,
  RedisClientOptions,
  RedisClusterNode,
  RedisClusterOptions,
} from './peer-types';
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
  | { config: PostgresClientConfig }
  /** Reuse the app's TypeORM DataSource settings; the reader still opens its own connection. */
  | { dataSource: DataSource };

export type RedisConnection =
  | { url: string }
  | { options: RedisClientOptions }
  /**
   * A Redis Cluster: its start-up nodes and ioredis cluster options. Every key of one index
   * carries one hash tag (one slot), the bus uses sharded pub/sub on that slot.
   */
  | { cluster: RedisClusterNode[]; options?: RedisClusterOptions }
  /** An existing client: the module duplicates it for pub/sub and never closes it. */
  | { client: RedisClientLike };

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

export interface HttpPollingOptions {
  /** Long-poll hold when the client names none, in seconds. Default 25. */
  defaultWaitS?: number;
  /** Longest hold a client may ask for, in seconds; below common proxy idle timeouts. Default 55. */
  maxWaitS?: number;
  /** Held requests per client key (429 beyond). Default 16. */
  maxHeldPerClient?: number;
  /** Held requests in this process (503 beyond). Default 20000. */
  maxHeld?: number;
  /** Shortest time between two polls of one client key, in ms (429 sooner); 0 disables. Default 0. */
  minPollIntervalMs?: number;
  /**
   * Client key of the per-client limits (`maxHeldPerClient`, `minPollIntervalMs`), e.g. an API key
   * or user id. Default, and whenever it returns undefined or '': `req.ip`, the client address
   * (behind a proxy, set Express's `trust proxy` so that it is the X-Forwarded-For address).
   */
  clientKey?: (request: PollingRequest) => string | undefined;
  /** Most changed ids handed to one handler run; the rest come with the next poll. Default 1000. */
  maxChangesPerResponse?: number;
  /** Secret that signs feed cursors. Without it cursors carry only a checksum. */
  cursorSecret?: string;
  /** Bounds of the Poll-Interval hint, in seconds. Default 1 and 30. */
  pollIntervalS?: { min: number; max: number };
  /** Retry-After on 503 answers, in seconds. Default 5. */
  retryAfterS?: number;
  sse?: SseOptions;
}

/** Server-Sent Events (@LiveStream) of every route. */
export interface SseOptions {
  /**
   * Bytes a subscriber's connection may hold unsent (written by the server, not yet taken by the
   * kernel). Beyond it the server waits for the client to read before the next event; a client
   * that then takes nothing for 1 s is dropped (its connection destroyed, its held slot freed) and
   * resumes with its `Last-Event-ID`. Bounds the memory of a client that stopped reading to about
   * this plus one event. Default 1048576 (1 MiB); 1024 to 1073741824.
   */
  maxBufferedBytes?: number;
}

export interface AggregatorOptions {
  /** Share one handler run between identical concurrent polls. Default true. */
  enabled?: boolean;
  /**
   * The caller's auth scope (user id, tenant, role set): only requests with the same scope share.
   * Without it nothing is shared between requests (headers are no identity: a gateway may send
   * one service token for every user). Return null to opt a request out.
   */
  scope?: (request: PollingRequest) => string | null | undefined;
  /** How long a finished run still answers identical latecomers, in ms. Default 250. */
  lingerMs?: number;
  /** Bound on remembered results. Default 10000. */
  maxEntries?: number;
}

/**
 * A prom-client `Registry`, described by the members the module uses, so the library's types do
 * not need prom-client installed.
 */
export interface MetricsRegistry {
  readonly contentType: string;
  metrics(): Promise<string>;
  getSingleMetric(name: string): unknown;
  removeSingleMetric(name: string): void;
}

export interface MetricsOptions {
  /** Collect Prometheus metrics (needs the optional peer `prom-client`). Default false. */
  enabled?: boolean;
  /**
   * Route that serves them, mounted by `PollingModule.forRoot` (with `forRootAsync`, or to add
   * guards, mount `createMetricsController()` yourself and set false). Default `/metrics`.
   */
  path?: string | false;
  /** Registry to register the metrics in. Default: a registry of the module's own. */
  registry?: MetricsRegistry;
  /** Prefix of every metric name. Default `polling_`. */
  prefix?: string;
  /** Buckets of the commit-to-delivery histogram, in seconds. */
  delayBuckets?: number[];
}

export interface HealthOptions {
  /**
   * The reader check reports `degraded` (status down) once changes have been held back behind an
   * open transaction (the commit horizon stuck) for longer than this, in ms. Default 60000.
   */
  horizonStallMs?: number;
  /** Time limit of the Redis PING and the Postgres query of the health checks, in ms. Default 2000. */
  timeoutMs?: number;
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
  http?: HttpPollingOptions;
  aggregator?: AggregatorOptions;
  /** Prometheus metrics; off by default. */
  metrics?: MetricsOptions;
  /** Thresholds of PollingHealthIndicator. */
  health?: HealthOptions;
}
