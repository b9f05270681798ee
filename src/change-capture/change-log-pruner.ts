import { Logger } from '@nestjs/common';
import { Client, type ClientConfig } from 'pg';
import type { Socket } from 'node:net';
import type { ChangeIndex } from '../change-index/change-index.interface';
import type { ResolvedOptions } from '../resolve-options';
import { CHANGE_LOG_START, type ChangeLogCursor } from './change-log-cursor';
import { ChangeLogQueries } from './change-log.queries';
import { wakeChannel } from './schema/schema-name';

/** Rows per DELETE statement: a short transaction, however large the backlog. */
const CHUNK_ROWS = 5000;
/** Smallest chunk after timeouts halved it (a very slow disk). */
const MIN_CHUNK_ROWS = 100;
/** Server-side limit of one chunk; a chunk that hits it is retried at half the size. */
const CHUNK_TIMEOUT_MS = 60_000;
/**
 * Client-side limit of any pruner statement, above the server's: only a dead or half-open socket
 * reaches it, and the round then ends so the next one connects afresh.
 */
const SOCKET_TIMEOUT_MS = CHUNK_TIMEOUT_MS + 15_000;
/** A connect that takes longer is given up; the next round tries again. */
const CONNECT_TIMEOUT_MS = 10_000;
/** Between chunks the pruner rests as long as the chunk took (capped): half the I/O at most. */
const MAX_REST_MS = 500;

/**
 * Deletes change-log rows past retention and trims the index to the same window, in the
 * background, on a connection of its own: never on the reader's session or under its query
 * timeout, and never in a long transaction. The work is resumable rather than remembered: every
 * chunk commits on its own, and a round always starts from the oldest row, so a round cut short
 * (reconnect, takeover, restart) leaves nothing to redo; the next one carries on.
 */
export class ChangeLogPruner {
  private readonly logger = new Logger('ChangeLogPruner');
  private readonly queries: ChangeLogQueries;
  private client: Client | null = null;
  private round: Promise<void> | null = null;
  /** On the monotonic clock (performance.now), like the reader's other chores. */
  private lastStart = -Infinity;
  private stopped = false;
  private chunkRows = CHUNK_ROWS;

  constructor(
    private readonly config: ClientConfig,
    private readonly options: ResolvedOptions,
    private readonly index: ChangeIndex,
    /** After a trim, even a failed one (its first step may have raised the floor). */
    private readonly trimmed: () => void = () => undefined,
  ) {
    this.queries = new ChangeLogQueries(options.schema);
  }

  /**
   * Whether a round is due: the interval passed since the last one started in this process, and
   * none is running. The clock belongs to the app, not to a leadership or a connection, so
   * reconnects and takeovers do not restart it.
   */
  due(now = performance.now()): boolean {
    return this.round === null && !this.stopped && now - this.lastStart >= this.intervalMs;
  }

  /** Starts a round in the background (the caller stored its reader state first). */
  start(now = performance.now()): void {
    if (!this.due(now)) return;
    this.lastStart = now;
    this.round = this.runRound()
      .catch((error: Error) => {
        if (!this.stopped) this.logger.warn(`prune interrupted: ${error.message}`);
        this.dropClient();
      })
      .finally(() => {
        this.round = null;
      });
  }

  /** Resolves once a running round has stopped (for tests and shutdown). */
  async idle(): Promise<void> {
    await this.round;
  }

  /** Stops at once: the socket is closed under a running chunk (which then rolls back). */
  async close(): Promise<void> {
    this.stopped = true;
    this.dropClient();
    await this.round;
  }

  private get channel(): string {
    return wakeChannel(this.options.schema);
  }

  private get intervalMs(): number {
    return this.options.reader.pruneIntervalMs;
  }

  private async runRound(): Promise<void> {
    await this.trimIndex();
    const deleted = await this.pruneChangeLog();
    if (deleted > 0) this.logger.debug(`pruned ${deleted} change-log rows`);
  }

  /**
   * Trims the index by its own marks: what it stores, not what this process remembers. Feeds left
   * with no change keep their floors for one more retention window (the forget line): a client
   * polling a quiet feed holds the index floor as its cursor, which must stay valid that long.
   */
  private async trimIndex(): Promise<void> {
    const { maxAgeMs, maxRows } = this.options.retention;
    const head = await this.index.head();
    if (head === null) return;
    const now = Date.now();
    let floor = maxRows === null ? 0 : head.position - maxRows;
    let forget = maxRows === null ? 0 : head.position - 2 * maxRows;
    if (maxAgeMs !== null) {
      floor = Math.max(floor, await this.index.expiredPosition(now - maxAgeMs));
      forget = Math.max(forget, await this.index.expiredPosition(now - 2 * maxAgeMs));
    }
    // However short the retention (fewer rows than one long poll sees written), a quiet feed's
    // cursor outlives two of the longest holds: a client that keeps polling never reloads.
    const holdMs = this.options.http.maxWaitS * 1000;
    forget = Math.min(forget, await this.index.expiredPosition(now - 2 * holdMs));
    if (floor <= 0) return;
    try {
      await this.index.trim(floor, Math.max(forget, 0));
    } finally {
      this.trimmed();
    }
  }

  private async pruneChangeLog(): Promise<number> {
    const client = await this.connect();
    await this.queries.forgetGoneReaders(client);
    const bound = await this.queries.pruneBound(client);
    if (bound === null) return 0; // no live reader: it may still need every row
    const { maxAgeMs, maxRows } = this.options.retention;
    const overflow = maxRows === null ? null : await this.queries.overflowEnd(client, maxRows);
    let after: ChangeLogCursor = CHANGE_LOG_START;
    let total = 0;
    while (!this.stopped) {
      const started = performance.now();
      const chunk = await this.chunk(client, { after, bound, overflow, maxAgeMs });
      if (chunk === null) continue; // timed out: retry the same rows in a smaller chunk
      total += chunk.deleted;
      // While a chunk ran, its transaction held the commit horizon back: a change committed
      // meanwhile was invisible to the reader, and its NOTIFY may have come too early. Wake the
      // reader now that the horizon moved on, instead of leaving it to its backoff.
      if (chunk.deleted > 0) await client.query('SELECT pg_notify($1, NULL)', [this.channel]);
      // Done when a row within retention ended the chunk, or the bound was reached.
      if (chunk.last === null || chunk.deleted < chunk.scanned) break;
      if (chunk.scanned < this.chunkRows) break;
      after = chunk.last;
      const rest = Math.min(performance.now() - started, MAX_REST_MS);
      await new Promise((resolve) => setTimeout(resolve, rest));
    }
    return total;
  }

  private async chunk(
    client: Client,
    args: Omit<Parameters<ChangeLogQueries['pruneChunk']>[1], 'limit'>,
  ): Promise<Awaited<ReturnType<ChangeLogQueries['pruneChunk']>> | null> {
    try {
      return await this.queries.pruneChunk(client, { ...args, limit: this.chunkRows });
    } catch (error) {
      // 57014: statement timeout. Only this chunk rolled back; smaller ones will get through.
      if ((error as { code?: string }).code !== '57014' || this.chunkRows <= MIN_CHUNK_ROWS) {
        throw error;
      }
      this.chunkRows = Math.max(MIN_CHUNK_ROWS, Math.floor(this.chunkRows / 2));
      this.logger.warn(`a prune chunk timed out; continuing with ${this.chunkRows} rows per chunk`);
      return null;
    }
  }

  private async connect(): Promise<Client> {
    // A round that reaches here after close() (it was trimming the index) must not open a
    // connection nobody would end: it would keep the process alive.
    if (this.stopped) throw new Error('pruner stopped');
    if (this.client) return this.client;
    const client = new Client({
      ...this.config,
      keepAlive: true,
      application_name: 'nestjs-polling pruner',
      statement_timeout: CHUNK_TIMEOUT_MS,
      query_timeout: SOCKET_TIMEOUT_MS,
      connectionTimeoutMillis: this.config.connectionTimeoutMillis ?? CONNECT_TIMEOUT_MS,
    });
    client.on('error', () => {
      if (this.client === client) this.dropClient();
    });
    this.client = client;
    try {
      // pg's connect() does not settle when its socket is destroyed mid-handshake (close() on a
      // half-open connection), so the socket's close ends it too.
      const closed = new Promise<never>((_, reject) =>
        socketOf(client)?.once('close', () => reject(new Error('pruner connection closed'))),
      );
      closed.catch(() => undefined);
      await Promise.race([client.connect(), closed]);
    } catch (error) {
      if (this.client === client) this.dropClient();
      throw error;
    }
    // A prune lost in a crash is redone by the next round: no chunk needs to wait for its WAL
    // flush, and writers' commits do not queue behind the pruner's.
    await client.query('SET synchronous_commit = off');
    return client;
  }

  /** Closes without waiting on a socket that may be half-open. */
  private dropClient(): void {
    const client = this.client;
    this.client = null;
    if (!client) return;
    const stream = socketOf(client);
    client.end().catch(() => undefined);
    stream?.destroy();
  }
}

/** The client's socket (pg does not expose it), to end a connection that may be half-open. */
function socketOf(client: Client): Socket | undefined {
  return (client as unknown as { connection?: { stream?: Socket } }).connection?.stream;
}
