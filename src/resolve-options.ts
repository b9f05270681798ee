import {
  DEFAULT_KEY_PREFIX,
  DEFAULT_RETENTION_MS,
  DEFAULT_SCHEMA,
  HTTP_DEFAULTS,
  READER_DEFAULTS,
} from './polling.constants';
import { assertSchemaName } from './sql-identifier';
import { PollingConfigError } from './polling-config.error';
import type {
  AggregatorOptions,
  HealthOptions,
  HttpPollingOptions,
  MetricsOptions,
  PollingModuleOptions,
  PostgresConnection,
  ReaderTuning,
  SseOptions,
} from './polling-options.interface';

export interface ResolvedTable {
  /** `schema.table` or `table` as configured. */
  table: string;
  key: string;
  partition: string | null;
  feed: string;
}

export interface ResolvedOptions {
  postgres: PostgresConnection;
  redis: PollingModuleOptions['redis'];
  tables: ResolvedTable[];
  retention: { maxAgeMs: number | null; maxRows: number | null };
  keyPrefix: string;
  schema: string;
  installSchema: boolean;
  reader: Required<ReaderTuning>;
  http: ResolvedHttpOptions;
  aggregator: Required<Omit<AggregatorOptions, 'scope'>> & Pick<AggregatorOptions, 'scope'>;
  metrics: Required<Omit<MetricsOptions, 'registry'>> & Pick<MetricsOptions, 'registry'>;
  health: Required<HealthOptions>;
}

export type ResolvedHttpOptions = Required<Omit<HttpPollingOptions, 'clientKey' | 'sse'>> &
  Pick<HttpPollingOptions, 'clientKey'> & { sse: Required<SseOptions> };

const IDENT = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const TABLE = /^([A-Za-z_][A-Za-z0-9_]{0,62}\.)?[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const FEED = /^[A-Za-z_][A-Za-z0-9_-]{0,62}$/;

export { PollingConfigError };

function positiveInt(value: unknown, name: string, max = Number.MAX_SAFE_INTEGER, min = 1): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new PollingConfigError(
      `${name} must be an integer between ${min} and ${max}, got ${String(value)}`,
    );
  }
  return value;
}

/** The set entries only, so `{cursorSecret: undefined}` keeps the default. */
function defined<T extends object>(values: T | undefined): Partial<T> {
  return Object.fromEntries(
    Object.entries(values ?? {}).filter(([, value]) => value !== undefined),
  ) as Partial<T>;
}

function resolveTables(options: PollingModuleOptions): ResolvedTable[] {
  if (!Array.isArray(options.tables) || options.tables.length === 0) {
    throw new PollingConfigError('tables must name at least one table to track');
  }
  const feeds = new Set<string>();
  return options.tables.map((t) => {
    if (!t || typeof t.table !== 'string' || !TABLE.test(t.table)) {
      throw new PollingConfigError(
        `tracked table name "${t?.table}" is not a plain [schema.]table name`,
      );
    }
    const key = t.key ?? 'id';
    const partition = t.partition ?? null;
    for (const [what, column] of [
      ['key', key],
      ['partition', partition],
    ] as const) {
      if (column !== null && !IDENT.test(column)) {
        throw new PollingConfigError(
          `${what} column "${column}" of ${t.table} is not a plain column name`,
        );
      }
    }
    const feed = t.feed ?? t.table.split('.').pop()!;
    if (!FEED.test(feed)) throw new PollingConfigError(`feed name "${feed}" is invalid`);
    if (feeds.has(feed)) throw new PollingConfigError(`feed "${feed}" is configured twice`);
    feeds.add(feed);
    return { table: t.table, key, partition, feed };
  });
}

function resolveRetention(options: PollingModuleOptions): ResolvedOptions['retention'] {
  if (options.retention === undefined) return { maxAgeMs: DEFAULT_RETENTION_MS, maxRows: null };
  const { maxAgeMs, maxRows } = options.retention;
  if (maxAgeMs === undefined && maxRows === undefined) {
    throw new PollingConfigError('retention needs maxAgeMs and/or maxRows');
  }
  return {
    maxAgeMs: maxAgeMs === undefined ? null : positiveInt(maxAgeMs, 'retention.maxAgeMs'),
    maxRows: maxRows === undefined ? null : positiveInt(maxRows, 'retention.maxRows'),
  };
}

function resolveHttp(options: PollingModuleOptions): ResolvedHttpOptions {
  const h = { ...HTTP_DEFAULTS, ...defined(options.http) };
  const maxWaitS = positiveInt(h.maxWaitS, 'http.maxWaitS', 3600, 0);
  const defaultWaitS = positiveInt(h.defaultWaitS, 'http.defaultWaitS', maxWaitS, 0);
  if (typeof h.cursorSecret !== 'string' || h.cursorSecret.length === 0) {
    throw new PollingConfigError('http.cursorSecret must be a non-empty string');
  }
  const min = positiveInt(h.pollIntervalS?.min, 'http.pollIntervalS.min', 3600);
  const max = positiveInt(h.pollIntervalS?.max, 'http.pollIntervalS.max', 3600, min);
  if (h.clientKey !== undefined && typeof h.clientKey !== 'function') {
    throw new PollingConfigError('http.clientKey must be a function of the request');
  }
  return {
    defaultWaitS,
    maxWaitS,
    maxHeldPerClient: positiveInt(h.maxHeldPerClient, 'http.maxHeldPerClient', 1_000_000),
    maxHeld: positiveInt(h.maxHeld, 'http.maxHeld', 10_000_000),
    minPollIntervalMs: positiveInt(h.minPollIntervalMs, 'http.minPollIntervalMs', 3_600_000, 0),
    maxChangesPerResponse: positiveInt(
      h.maxChangesPerResponse,
      'http.maxChangesPerResponse',
      100_000,
    ),
    cursorSecret: h.cursorSecret,
    pollIntervalS: { min, max },
    retryAfterS: positiveInt(h.retryAfterS, 'http.retryAfterS', 3600),
    sse: resolveSse(h.sse),
    clientKey: h.clientKey,
  };
}

function resolveSse(sse: HttpPollingOptions['sse']): ResolvedHttpOptions['sse'] {
  if (sse === null || typeof sse !== 'object') {
    throw new PollingConfigError(
      'http.sse must be an object such as { maxBufferedBytes: 1048576 }',
    );
  }
  const maxBufferedBytes = sse.maxBufferedBytes ?? HTTP_DEFAULTS.sse.maxBufferedBytes;
  return {
    maxBufferedBytes: positiveInt(maxBufferedBytes, 'http.sse.maxBufferedBytes', 2 ** 30, 1024),
  };
}

function resolveAggregator(options: PollingModuleOptions): ResolvedOptions['aggregator'] {
  const a = options.aggregator ?? {};
  if (a.scope !== undefined && typeof a.scope !== 'function') {
    throw new PollingConfigError('aggregator.scope must be a function of the request');
  }
  return {
    enabled: a.enabled ?? true,
    scope: a.scope,
    lingerMs: positiveInt(a.lingerMs ?? 250, 'aggregator.lingerMs', 60_000, 0),
    maxEntries: positiveInt(a.maxEntries ?? 10_000, 'aggregator.maxEntries', 1_000_000),
  };
}

const DEFAULT_DELAY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const METRIC_PREFIX = /^[a-zA-Z_:][a-zA-Z0-9_:]{0,100}$|^$/;

export function resolveMetrics(options: PollingModuleOptions): ResolvedOptions['metrics'] {
  const m = options.metrics ?? {};
  const path = m.path ?? '/metrics';
  if (path !== false && (typeof path !== 'string' || !/^\/?[A-Za-z0-9._~/-]+$/.test(path))) {
    throw new PollingConfigError(
      `metrics.path must be a plain route path or false, got ${String(path)}`,
    );
  }
  const prefix = m.prefix ?? 'polling_';
  if (typeof prefix !== 'string' || !METRIC_PREFIX.test(prefix)) {
    throw new PollingConfigError(`metrics.prefix "${String(prefix)}" is not a metric name prefix`);
  }
  const buckets = m.delayBuckets ?? DEFAULT_DELAY_BUCKETS;
  if (
    !Array.isArray(buckets) ||
    buckets.length === 0 ||
    buckets.some((b, i) => !(Number.isFinite(b) && b > 0 && (i === 0 || b > buckets[i - 1])))
  ) {
    throw new PollingConfigError('metrics.delayBuckets must be increasing positive seconds');
  }
  if (m.registry !== undefined && typeof m.registry?.metrics !== 'function') {
    throw new PollingConfigError('metrics.registry must be a prom-client Registry');
  }
  return {
    enabled: m.enabled ?? false,
    path,
    registry: m.registry,
    prefix,
    delayBuckets: [...buckets],
  };
}

function resolveHealth(options: PollingModuleOptions): ResolvedOptions['health'] {
  const h = options.health ?? {};
  return {
    horizonStallMs: positiveInt(h.horizonStallMs ?? 60_000, 'health.horizonStallMs', 86_400_000),
    timeoutMs: positiveInt(h.timeoutMs ?? 2000, 'health.timeoutMs', 60_000),
  };
}

/**
 * A cluster needs start-up nodes, and a key prefix without braces: the module puts the index's
 * hash tag after it, and Redis hashes the first `{…}` of a key.
 */
function assertRedisCluster(redis: PollingModuleOptions['redis'], keyPrefix: string): void {
  if (!redis || !('cluster' in redis)) return;
  const nodes: unknown = redis.cluster;
  const valid = (node: unknown) =>
    typeof node === 'object' &&
    node !== null &&
    typeof (node as { host?: unknown }).host === 'string' &&
    Number.isInteger((node as { port?: unknown }).port);
  if (!Array.isArray(nodes) || nodes.length === 0 || !nodes.every(valid)) {
    throw new PollingConfigError('redis.cluster must be a non-empty array of { host, port }');
  }
  if (/[{}]/.test(keyPrefix)) {
    throw new PollingConfigError('keyPrefix must not contain { or } with redis.cluster');
  }
}

/** Validates options once, at module creation, so a bad setting fails the app's start. */
export function resolveOptions(options: PollingModuleOptions): ResolvedOptions {
  if (!options || !options.postgres)
    throw new PollingConfigError('postgres connection is required');
  const keyPrefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX;
  if (typeof keyPrefix !== 'string' || keyPrefix.length === 0 || keyPrefix.length > 200) {
    throw new PollingConfigError('keyPrefix must be a non-empty string of at most 200 characters');
  }
  assertRedisCluster(options.redis, keyPrefix);
  const schema = assertSchemaName(options.schema ?? DEFAULT_SCHEMA);
  const r = { ...READER_DEFAULTS, ...defined(options.reader) };
  return {
    postgres: options.postgres,
    redis: options.redis,
    tables: resolveTables(options),
    retention: resolveRetention(options),
    keyPrefix,
    schema,
    installSchema: options.installSchema ?? false,
    reader: {
      batchSize: positiveInt(r.batchSize, 'reader.batchSize', 100_000),
      backstopMs: positiveInt(r.backstopMs, 'reader.backstopMs', 3_600_000),
      queryTimeoutMs: positiveInt(r.queryTimeoutMs, 'reader.queryTimeoutMs', 3_600_000),
      leaderRetryMs: positiveInt(r.leaderRetryMs, 'reader.leaderRetryMs', 3_600_000),
      pruneIntervalMs: positiveInt(r.pruneIntervalMs, 'reader.pruneIntervalMs', 86_400_000),
    },
    http: resolveHttp(options),
    aggregator: resolveAggregator(options),
    metrics: resolveMetrics(options),
    health: resolveHealth(options),
  };
}
