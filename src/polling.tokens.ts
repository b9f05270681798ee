import { Inject } from '@nestjs/common';

/** Options after validation and defaults (see resolve-options.ts). */
export const POLLING_RESOLVED_OPTIONS = Symbol('nestjs-polling:ResolvedOptions');
/** The Redis connection the module uses, or null for the in-memory index. */
export const POLLING_REDIS = Symbol('nestjs-polling:Redis');
/** IndexKeys: the index's key prefix, bus channel and leader lock (see index-keys.ts). */
export const POLLING_INDEX_KEYS = Symbol('nestjs-polling:IndexKeys');

/** The path forRoot mounted the metrics route at; null when nothing was mounted (forRootAsync). */
export const POLLING_METRICS_ROUTE = Symbol('nestjs-polling:MetricsRoute');

export const InjectPollingOptions = () => Inject(POLLING_RESOLVED_OPTIONS);
export const InjectPollingRedis = () => Inject(POLLING_REDIS);
export const InjectIndexKeys = () => Inject(POLLING_INDEX_KEYS);
