export { PollingModule } from './polling.module';
export {
  POLLING_ASYNC_OPTIONS_TYPE,
  POLLING_MODULE_OPTIONS,
  POLLING_OPTIONS_TYPE,
} from './polling.module-definition';
export type {
  PollingModuleOptions,
  PostgresConnection,
  ReaderTuning,
  RedisConnection,
  RetentionOptions,
  TrackedTable,
} from './polling-options.interface';
export { PollingConfigError } from './resolve-options';
export { ChangeReader } from './change-capture/change-reader.service';
export type { ReaderLag, ReaderRole } from './change-capture/change-reader.service';
export { ChangeBus } from './change-bus/change-bus.service';
export type { ChangeNotice } from './change-bus/change-notice.interface';
export { CHANGE_INDEX } from './change-index/change-index.interface';
export type {
  ChangeIndex,
  FeedChanges,
  FeedPosition,
  IndexHead,
} from './change-index/change-index.interface';
export { MemoryChangeIndex } from './change-index/memory-change-index';
export { RedisChangeIndex } from './change-index/redis-change-index';
export { installChangeLogSql, uninstallChangeLogSql } from './change-capture/schema/change-log.sql';
export {
  pollingMigrations,
  PollingChangeLog1732350000000,
  PollingCaptureFunctions1764900000000,
} from './migrations';
export { FeedSnapshot, Poll, LongPoll } from './http-polling/poll.decorators';
export { PollContext } from './http-polling/poll-context.decorator';
export type {
  PartitionSource,
  PollReason,
  PollRouteOptions,
} from './http-polling/poll-route-options.interface';
export { PollingInterceptor } from './http-polling/polling.interceptor';
export { HeldRequests } from './http-polling/held-requests.service';
export { loadFeedChanges, type FeedChange } from './http-polling/feed-changes';
export type { HttpPollingOptions } from './polling-options.interface';
export { BatchPoll, type BatchPollOptions } from './http-polling/batch/batch-poll.decorator';
export type { BatchFeedAnswer } from './http-polling/batch/batch-poll.interceptor';
export { installJsonHttpErrors } from './http-polling/json-http-errors';
export { ClientErrorsFilter } from './http-polling/client-errors.filter';
export { LiveStream } from './http-polling/sse/live-stream.decorator';
export type { LiveStreamOptions } from './http-polling/sse/live-stream.metadata';
export { LiveStreamGate } from './http-polling/sse/live-stream.gate';
export { LiveStreamInterceptor } from './http-polling/sse/live-stream.interceptor';
export { ResponseAggregator } from './aggregation/response-aggregator.service';
export {
  PollingMetrics,
  type PollKind,
  type RejectReason,
} from './metrics/polling-metrics.service';
export { createMetricsController } from './metrics/metrics.controller';
export type { HealthOptions, MetricsOptions, MetricsRegistry } from './polling-options.interface';
export {
  PollingHealthIndicator,
  type PollingHealthResult,
  type ReaderHealthOptions,
} from './health/polling-health.indicator';
export type { WakeReason } from './http-polling/held-requests.service';
export type { AggregatorOptions } from './polling-options.interface';
export { CursorPaginator } from './pagination/cursor-paginator';
export type {
  CursorPaginatorOptions,
  Page,
  PageRequest,
  SortDirection,
  SortField,
} from './pagination/page.interface';
