export const DEFAULT_KEY_PREFIX = 'polling:';
export const DEFAULT_SCHEMA = 'public';
export const DEFAULT_RETENTION_MS = 24 * 60 * 60 * 1000;

export const READER_DEFAULTS = {
  batchSize: 5000,
  backstopMs: 1000,
  queryTimeoutMs: 5000,
  leaderRetryMs: 500,
  pruneIntervalMs: 60_000,
} as const;

export const HTTP_DEFAULTS = {
  defaultWaitS: 25,
  maxWaitS: 55,
  maxHeldPerClient: 16,
  maxHeld: 20_000,
  minPollIntervalMs: 0,
  maxChangesPerResponse: 1000,
  cursorSecret: 'nestjs-polling',
  pollIntervalS: { min: 1, max: 30 },
  retryAfterS: 5,
  sse: { maxBufferedBytes: 1024 * 1024 },
} as const;
