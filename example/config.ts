/** The example app's settings, all from the environment (README: "Example app"). */
export interface ExampleConfig {
  databaseUrl: string;
  /** The change reader's own session (LISTEN, advisory lock); default DATABASE_URL. */
  readerDatabaseUrl: string;
  redisUrl: string | undefined;
  port: number;
  migrateOnStart: boolean;
  /** API key → user id. */
  apiKeys: Map<string, string>;
  maxHeldPerClient: number;
  maxHeld: number;
  minPollIntervalMs: number;
  maxWaitS: number;
  taskDelayMs: number;
  /** /health reports the reader degraded after changes are held back this long (ms). */
  healthHorizonStallMs: number;
  /** A connection whose request headers are not complete by then gets a 408 (slowloris). */
  httpHeadersTimeoutMs: number;
  /** ... whose whole request (headers and body) is not complete by then. */
  httpRequestTimeoutMs: number;
  /** HTTP_PLATFORM: `express` (default) or `fastify`. */
  httpPlatform: 'express' | 'fastify';
  /**
   * TEST ONLY: writable scratch streams at /v1/stream/{name} without an API key, for the Durable
   * Streams conformance suite (DURABLE_STREAMS_TEST_WRITES=1). Off unless set.
   */
  durableStreamTestWrites: boolean;
}

export const DEMO_API_KEYS = 'user1:key-1,user2:key-2';

function int(env: NodeJS.ProcessEnv, name: string, fallback: number, min = 0): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^[0-9]+$/.test(raw) || Number(raw) < min) {
    throw new Error(`${name} must be a whole number ≥ ${min}, got "${raw}"`);
  }
  return Number(raw);
}

function parseApiKeys(text: string): Map<string, string> {
  const keys = new Map<string, string>();
  for (const pair of text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const [user, key] = pair.split(':');
    if (!user || !key) throw new Error(`API_KEYS must look like user1:key-1,user2:key-2`);
    keys.set(key, user);
  }
  return keys;
}

/** No DATABASE_URL outside production: the example starts an embedded PostgreSQL (README). */
export function usesEmbeddedPostgres(env: NodeJS.ProcessEnv = process.env): boolean {
  return !env.DATABASE_URL && env.NODE_ENV !== 'production';
}

/** EMBEDDED_PG_PORT: the embedded PostgreSQL's port (unset: 54329 if free, else any free one). */
export function embeddedPostgresPort(env: NodeJS.ProcessEnv = process.env): number | undefined {
  return env.EMBEDDED_PG_PORT ? int(env, 'EMBEDDED_PG_PORT', 0, 1) : undefined;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): ExampleConfig {
  if (!env.DATABASE_URL) {
    throw new Error(
      env.NODE_ENV === 'production'
        ? 'DATABASE_URL is not set: it is required when NODE_ENV=production ' +
            '(e.g. postgres://user:password@host:5432/db); the embedded PostgreSQL is for development only'
        : 'DATABASE_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/postgres)',
    );
  }
  return {
    databaseUrl: env.DATABASE_URL,
    // LISTEN and the leader's advisory lock need a session of their own: behind PgBouncer in
    // transaction mode, point READER_DATABASE_URL straight at PostgreSQL.
    readerDatabaseUrl: env.READER_DATABASE_URL || env.DATABASE_URL,
    redisUrl: env.REDIS_URL || undefined,
    port: int(env, 'PORT', 3000),
    migrateOnStart: env.MIGRATE_ON_START === '1' || env.MIGRATE_ON_START === 'true',
    apiKeys: parseApiKeys(env.API_KEYS ?? DEMO_API_KEYS),
    maxHeldPerClient: int(env, 'POLL_MAX_HELD_PER_CLIENT', 32, 1),
    maxHeld: int(env, 'POLL_MAX_HELD', 20_000, 1),
    minPollIntervalMs: int(env, 'POLL_MIN_INTERVAL_MS', 0),
    maxWaitS: int(env, 'POLL_MAX_WAIT_S', 55, 1),
    taskDelayMs: int(env, 'TASK_DELAY_MS', 1000),
    healthHorizonStallMs: int(env, 'HEALTH_HORIZON_STALL_MS', 60_000, 1),
    httpHeadersTimeoutMs: int(env, 'HTTP_HEADERS_TIMEOUT_MS', 10_000, 1),
    httpRequestTimeoutMs: int(env, 'HTTP_REQUEST_TIMEOUT_MS', 30_000, 1),
    httpPlatform: httpPlatform(env.HTTP_PLATFORM),
    durableStreamTestWrites: env.DURABLE_STREAMS_TEST_WRITES === '1',
  };
}

function httpPlatform(value: string | undefined): ExampleConfig['httpPlatform'] {
  if (value === undefined || value === '' || value === 'express') return 'express';
  if (value === 'fastify') return 'fastify';
  throw new Error(`HTTP_PLATFORM must be express or fastify, got "${value}"`);
}

export const EXAMPLE_CONFIG = Symbol('ExampleConfig');
