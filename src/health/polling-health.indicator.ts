import { Injectable } from '@nestjs/common';
import { Client } from 'pg';
import { ChangeReader } from '../change-capture/change-reader.service';
import { postgresClientConfig } from '../change-capture/postgres-config';
import { InjectPollingRedis, InjectPollingOptions } from '../polling.tokens';
import type { ResolvedOptions } from '../resolve-options';

/** The part of the module's Redis client (ioredis) the health check uses. */
interface PingClient {
  ping(): Promise<string>;
}

/**
 * The shape @nestjs/terminus expects from a health indicator (`HealthIndicatorResult`): one entry
 * per key with `status` up or down. Terminus 11 reports an entry whose status is `down` as an
 * error (503) without the indicator having to throw, so this module needs no import of it.
 */
export type PollingHealthResult<Key extends string = string> = Record<
  Key,
  { status: 'up' | 'down' } & Record<string, unknown>
>;

export interface ReaderHealthOptions {
  /** Report a stuck horizon as `down` (default), or as `up` with `state: 'degraded'`. */
  stalledIsDown?: boolean;
}

/**
 * Health of the polling module for a Terminus health check:
 *
 * ```ts
 * @Get('health') @HealthCheck()
 * check() {
 *   return this.health.check([
 *     () => this.polling.reader('reader'),
 *     () => this.polling.redis('redis'),
 *     () => this.polling.postgres('postgres'),
 *   ]);
 * }
 * ```
 */
@Injectable()
export class PollingHealthIndicator {
  constructor(
    private readonly changeReader: ChangeReader,
    @InjectPollingOptions() private readonly options: ResolvedOptions,
    // Only PING is used: typed by that, so the public .d.ts needs no ioredis.
    @InjectPollingRedis() private readonly redisHandle: { client: PingClient } | null,
  ) {}

  /**
   * The change reader: `live` (serves current data), `role` (leader or follower) and its lag. Down
   * while it starts or reconnects; `degraded` (down unless `stalledIsDown: false`) when changes
   * have been held back behind an open transaction longer than `health.horizonStallMs`.
   */
  reader<Key extends string = 'reader'>(
    key: Key = 'reader' as Key,
    options: ReaderHealthOptions = {},
  ): PollingHealthResult<Key> {
    const { role, live } = this.changeReader;
    const lag = this.changeReader.lag;
    const stalledForMs = lag.stalledSince === null ? 0 : Math.max(0, Date.now() - lag.stalledSince);
    const thresholdMs = this.options.health.horizonStallMs;
    const details = {
      live,
      role,
      heldBackRows: lag.heldBackRows,
      oldestOpenTransactionMs: Math.round(lag.oldestOpenTransactionMs),
      stalledForMs,
    };
    if (!live) {
      return result(key, 'down', {
        state: 'starting',
        message: 'the change reader is starting or reconnecting',
        ...details,
      });
    }
    if (stalledForMs > thresholdMs) {
      return result(key, options.stalledIsDown === false ? 'up' : 'down', {
        state: 'degraded',
        message:
          `${lag.heldBackRows} committed changes held back for ${stalledForMs} ms behind an open ` +
          `transaction (threshold ${thresholdMs} ms)`,
        ...details,
      });
    }
    return result(key, 'up', { state: 'ok', ...details });
  }

  /** PING through the module's Redis client; up with `configured: false` when there is none. */
  async redis<Key extends string = 'redis'>(key: Key = 'redis' as Key) {
    const client = this.redisHandle?.client;
    if (!client) return result(key, 'up', { configured: false, index: 'memory' });
    const started = Date.now();
    try {
      const answer = await withTimeout(client.ping(), this.options.health.timeoutMs, 'PING');
      if (answer !== 'PONG') throw new Error(`PING answered ${String(answer)}`);
      return result(key, 'up', { configured: true, latencyMs: Date.now() - started });
    } catch (error) {
      return result(key, 'down', { configured: true, message: (error as Error).message });
    }
  }

  /** `SELECT 1` on a short-lived connection of its own (the reader's is busy with its loop). */
  async postgres<Key extends string = 'postgres'>(key: Key = 'postgres' as Key) {
    const timeoutMs = this.options.health.timeoutMs;
    const client = new Client({
      ...postgresClientConfig(this.options.postgres),
      connectionTimeoutMillis: timeoutMs,
      query_timeout: timeoutMs,
      application_name: 'nestjs-polling health',
    });
    client.on('error', () => undefined);
    const started = Date.now();
    try {
      await withTimeout(client.connect(), timeoutMs, 'connect');
      await client.query('SELECT 1');
      return result(key, 'up', { latencyMs: Date.now() - started });
    } catch (error) {
      return result(key, 'down', { message: (error as Error).message });
    } finally {
      client.end().catch(() => undefined);
    }
  }

  /** The three checks in one result (keys `reader`, `redis`, `postgres`). */
  async all(options: ReaderHealthOptions = {}): Promise<PollingHealthResult> {
    const [redis, postgres] = await Promise.all([this.redis(), this.postgres()]);
    return { ...this.reader('reader', options), ...redis, ...postgres };
  }
}

function result<Key extends string>(
  key: Key,
  status: 'up' | 'down',
  details: Record<string, unknown>,
): PollingHealthResult<Key> {
  return { [key]: { status, ...details } } as PollingHealthResult<Key>;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
