// nestjs-polling: what an app writes. Internals (the hold core, interceptors, gates, the bus,
// the aggregator) are not exported; the client SDK is `nestjs-polling/client`.

// ── Module and options ──────────────────────────────────────────────────────────────────────
export { PollingModule } from './polling.module';
export {
  POLLING_ASYNC_OPTIONS_TYPE,
  POLLING_MODULE_OPTIONS,
  POLLING_OPTIONS_TYPE,
} from './polling.module-definition';
export type {
  AggregatorOptions,
  HealthOptions,
  HttpPollingOptions,
  MetricsOptions,
  MetricsRegistry,
  PollingModuleOptions,
  PostgresConnection,
  ReaderTuning,
  RedisConnection,
  RetentionOptions,
  TrackedTable,
} from './polling-options.interface';
export type {
  PostgresClientConfig,
  RedisClientLike,
  RedisClientOptions,
  RedisClusterNode,
  RedisClusterOptions,
} from './peer-types';
export type { PollingRequest } from './polling-request.interface';
export { PollingConfigError } from './polling-config.error';
export { InjectPollingOptions } from './polling.tokens';

// ── Schema and migrations ───────────────────────────────────────────────────────────────────
export { installChangeLogSql, uninstallChangeLogSql } from './change-capture/schema/change-log.sql';
export {
  pollingMigrations,
  pollingMigrationsFor,
  PollingChangeLog1732350000000,
  PollingCaptureFunctions1764900000000,
  trackTable,
  untrackTable,
  type SqlRunner,
  type TrackTableOptions,
} from './migrations';

// ── Decorators ──────────────────────────────────────────────────────────────────────────────
export { FeedSnapshot, Poll, LongPoll } from './http-polling/poll.decorators';
export { PollContext } from './http-polling/poll-context.decorator';
export { BatchPoll, type BatchPollOptions } from './http-polling/batch/batch-poll.decorator';
export { LiveStream } from './http-polling/sse/live-stream.decorator';
export { DurableStream } from './durable-streams/durable-stream.decorator';

// ── Context and route option types ──────────────────────────────────────────────────────────
export type {
  PartitionSource,
  PollReason,
  PollRouteOptions,
} from './http-polling/poll-route-options.interface';
export type { BatchFeedAnswer } from './http-polling/batch/batch-poll.interceptor';
export type { LiveStreamOptions } from './http-polling/sse/live-stream.metadata';
export type {
  DurableStreamOptions,
  StreamBatch,
  StreamFormat,
  StreamRead,
} from './durable-streams/durable-stream.metadata';
export type { ChangeMessage } from './durable-streams/state-protocol.format';

// ── Pagination ──────────────────────────────────────────────────────────────────────────────
export { CursorPaginator } from './pagination/cursor-paginator';
export type {
  CursorPaginatorOptions,
  Page,
  PageRequest,
  SortDirection,
  SortField,
} from './pagination/page.interface';

// ── Helpers ─────────────────────────────────────────────────────────────────────────────────
export { loadFeedChanges, type FeedChange } from './http-polling/feed-changes';
export { installJsonHttpErrors } from './http-polling/json-http-errors';
export { ClientErrorsFilter } from './http-polling/client-errors.filter';

// ── Operating it: reader state, health, metrics ─────────────────────────────────────────────
export { ChangeReader } from './change-capture/change-reader.service';
export type { ReaderLag, ReaderRole } from './change-capture/change-reader.service';
export {
  PollingHealthIndicator,
  type PollingHealthResult,
  type ReaderHealthOptions,
} from './health/polling-health.indicator';
export {
  PollingMetrics,
  type PollKind,
  type RejectReason,
} from './metrics/polling-metrics.service';
export { createMetricsController } from './metrics/metrics.controller';
