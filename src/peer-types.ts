/*
 * The parts of pg's and ioredis' option types the public API mentions, written out so an app's
 * type check needs neither @types/pg nor ioredis installed (an app with skipLibCheck: false and
 * without Redis compiles). pg's ClientConfig and ioredis' RedisOptions and Redis are assignable to
 * them; the module hands them on unchanged. Values whose types live in those packages are unknown.
 */

/** pg's `ClientConfig` (https://node-postgres.com/apis/client). */
export interface PostgresClientConfig {
  connectionString?: string;
  host?: string;
  port?: number;
  user?: string;
  password?: string | (() => string | Promise<string>);
  database?: string;
  ssl?: boolean | object;
  application_name?: string;
  options?: string;
  statement_timeout?: false | number;
  query_timeout?: number;
  lock_timeout?: number;
  idle_in_transaction_session_timeout?: number;
  connectionTimeoutMillis?: number;
  keepAlive?: boolean;
  keepAliveInitialDelayMillis?: number;
  client_encoding?: string;
  fallback_application_name?: string;
  binary?: boolean;
  types?: unknown;
  stream?: unknown;
  enableChannelBinding?: boolean;
}

/** ioredis' `RedisOptions` (https://redis.github.io/ioredis/interfaces/CommonRedisOptions.html). */
export interface RedisClientOptions {
  host?: string;
  port?: number;
  path?: string;
  username?: string;
  password?: string;
  db?: number;
  tls?: object;
  family?: number;
  name?: string;
  role?: 'master' | 'slave';
  sentinels?: unknown[];
  sentinelUsername?: string;
  sentinelPassword?: string;
  enableTLSForSentinelMode?: boolean;
  natMap?: unknown;
  connectionName?: string;
  connectTimeout?: number;
  commandTimeout?: number;
  socketTimeout?: number;
  disconnectTimeout?: number;
  keepAlive?: number;
  noDelay?: boolean;
  retryStrategy?: unknown;
  reconnectOnError?: unknown;
  enableReadyCheck?: boolean;
  enableOfflineQueue?: boolean;
  maxRetriesPerRequest?: number | null;
  keyPrefix?: string;
  readOnly?: boolean;
  stringNumbers?: boolean;
  enableAutoPipelining?: boolean;
  autoPipeliningIgnoredCommands?: string[];
  showFriendlyErrorStack?: boolean;
  Connector?: unknown;
}

/** An ioredis client (`Redis`); the module duplicates it for pub/sub and never closes it. */
export interface RedisClientLike {
  duplicate(): unknown;
}

/** A start-up node of a Redis Cluster; the client learns the other nodes from it. */
export interface RedisClusterNode {
  host: string;
  port: number;
}

/** ioredis' `ClusterOptions` (https://redis.github.io/ioredis/interfaces/ClusterOptions.html). */
export interface RedisClusterOptions {
  /** Options of the connection to each node (password, tls, …). */
  redisOptions?: RedisClientOptions;
  clusterRetryStrategy?: unknown;
  enableOfflineQueue?: boolean;
  enableReadyCheck?: boolean;
  scaleReads?: 'master' | 'slave' | 'all';
  maxRedirections?: number;
  retryDelayOnFailover?: number;
  retryDelayOnClusterDown?: number;
  retryDelayOnTryAgain?: number;
  retryDelayOnMoved?: number;
  slotsRefreshTimeout?: number;
  slotsRefreshInterval?: number;
  dnsLookup?: unknown;
  natMap?: unknown;
  enableAutoPipelining?: boolean;
  autoPipeliningIgnoredCommands?: string[];
  useSRVRecords?: boolean;
  resolveSrv?: unknown;
}
