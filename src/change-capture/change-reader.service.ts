import {
  BeforeApplicationShutdown,
  Injectable,
  Logger,
  OnApplicationBootstrap,
} from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { ChangeBus } from '../change-bus/change-bus.service';
import {
  InjectChangeIndex,
  type ChangeIndex,
  type IndexHead,
} from '../change-index/change-index.interface';
import { InjectPollingOptions } from '../polling.tokens';
import type { ResolvedOptions } from '../resolve-options';
import type { ChangeLogCursor, ChangeLogRow } from './change-log-cursor';
import { ChangeLogQueries } from './change-log.queries';
import { IndexRetention } from './index-retention';
import { postgresClientConfig } from './postgres-config';
import { ReaderConnection } from './reader-connection';
import { checkTracking } from './schema/check-tracking';
import { installTracking } from './schema/install-tracking';
import { wakeChannel } from './schema/schema-name';
import { WakeSignal } from './wake-signal';

export type ReaderRole = 'starting' | 'leader' | 'follower';

export interface ReaderLag {
  /** Committed changes waiting behind an older open transaction (the commit horizon). */
  heldBackRows: number;
  /** Age of the oldest open writing or prepared transaction in the database. */
  oldestOpenTransactionMs: number;
  /** Since when changes have been held back (epoch ms), null when none are. */
  stalledSince: number | null;
}

interface ReaderState {
  generation: string;
  position: number;
  cursor: ChangeLogCursor;
}

const LAG_CHECK_MS = 250;
/** While changes flow, the reader reads again after this pause instead of waiting for NOTIFY. */
const BUSY_POLL_MS = 2;
/** How long reads must come back empty before the reader arms the wake gate and sleeps. */
const ARM_AFTER_IDLE_MS = 50;
const EMPTY_INDEX = 'the index is empty';
const STATE_WRITE_MS = 5000;
const MAX_RECONNECT_MS = 5000;

/**
 * Moves committed changes from the Postgres change log into the change index, in commit-safe
 * (xid, id) order, and announces them on the bus. With a shared index exactly one instance leads
 * (a session advisory lock on its dedicated connection); the others wait to take over.
 */
@Injectable()
export class ChangeReader implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('ChangeReader');
  private readonly queries: ChangeLogQueries;
  private readonly signal = new WakeSignal();
  private readonly retention: IndexRetention;
  private running: Promise<void> | null = null;
  private stopped = false;
  private connection: ReaderConnection | null = null;
  private liveNow = false;
  private liveWaiters: (() => void)[] = [];
  private currentRole: ReaderRole = 'starting';
  private currentLag: ReaderLag = {
    heldBackRows: 0,
    oldestOpenTransactionMs: 0,
    stalledSince: null,
  };

  constructor(
    @InjectPollingOptions() private readonly options: ResolvedOptions,
    @InjectChangeIndex() private readonly index: ChangeIndex,
    private readonly bus: ChangeBus,
  ) {
    this.queries = new ChangeLogQueries(options.schema);
    this.retention = new IndexRetention(options.retention.maxAgeMs, options.retention.maxRows);
  }

  get role(): ReaderRole {
    return this.currentRole;
  }

  get live(): boolean {
    return this.liveNow;
  }

  get lag(): ReaderLag {
    return { ...this.currentLag };
  }

  /** Server pid of the reader's dedicated connection (for operators and fault tests). */
  get backendPid(): number | null {
    const client = this.connection?.client as unknown as { processID?: number } | undefined;
    return client?.processID ?? null;
  }

  /** Channels the reader's own session LISTENs on (pg_listening_channels is per session). */
  async listeningChannels(): Promise<string[]> {
    if (!this.connection || this.currentRole !== 'leader') return [];
    const rows = await this.connection.query<{ channel: string }>(
      'SELECT pg_listening_channels() AS channel',
    );
    return rows.map((r) => r.channel);
  }

  /** Resolves when this instance serves current data: leader caught up, or follower of a built index. */
  whenLive(): Promise<void> {
    if (this.liveNow) return Promise.resolve();
    return new Promise((resolve) => this.liveWaiters.push(resolve));
  }

  async onApplicationBootstrap(): Promise<void> {
    const config = postgresClientConfig(this.options.postgres);
    // Checked once at start so a wrong table, column or database fails the app's start-up.
    const setup = await ReaderConnection.open(
      config,
      this.options.reader.queryTimeoutMs,
      this.signal,
    );
    try {
      if (this.options.installSchema) {
        await installTracking(setup.client, this.options.schema, this.options.tables);
      }
      await checkTracking(setup.client, this.options.schema, this.options.tables);
    } finally {
      setup.close();
    }
    this.signal.take();
    this.running = this.run();
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.stopped = true;
    this.signal.wake();
    this.connection?.close();
    await this.running;
  }

  private setLive(live: boolean): void {
    this.liveNow = live;
    if (!live) return;
    const waiters = this.liveWaiters;
    this.liveWaiters = [];
    waiters.forEach((resolve) => resolve());
  }

  private async run(): Promise<void> {
    const config = postgresClientConfig(this.options.postgres);
    let backoffMs = 100;
    let previousPid: number | null = null;
    while (!this.stopped) {
      try {
        this.connection = await ReaderConnection.open(
          config,
          this.options.reader.queryTimeoutMs,
          this.signal,
        );
        backoffMs = 100;
        if (previousPid !== null) await this.connection.terminateOwnSession(previousPid);
        previousPid = this.backendPid;
        if (this.index.shared && !(await this.becomeLeader(this.connection))) break;
        await this.connection.query(`LISTEN "${wakeChannel(this.options.schema)}"`);
        this.currentRole = 'leader';
        this.logger.log(`leading the change log of schema "${this.options.schema}"`);
        await this.lead(this.connection);
      } catch (error) {
        if (!this.stopped) {
          this.logger.warn(
            `reader interrupted: ${(error as Error).message}; retry in ${backoffMs} ms`,
          );
        }
      } finally {
        this.connection?.close();
        this.connection = null;
        this.currentRole = 'starting';
        this.setLive(false);
      }
      if (this.stopped) break;
      await new Promise((resolve) => setTimeout(resolve, backoffMs));
      backoffMs = Math.min(backoffMs * 2, MAX_RECONNECT_MS);
    }
  }

  /** Waits for the leader lock; returns false when stopped first. Follows the index meanwhile. */
  private async becomeLeader(connection: ReaderConnection): Promise<boolean> {
    const lockKey = `nestjs-polling:${this.options.schema}:${this.options.keyPrefix}`;
    while (!this.stopped) {
      const [row] = await connection.query<{ ok: boolean }>(
        'SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS ok',
        [lockKey],
      );
      if (row.ok) return true;
      this.currentRole = 'follower';
      const head = await this.index.head().catch(() => null);
      this.setLive(head !== null);
      await this.signal.sleep(this.options.reader.leaderRetryMs);
      this.signal.take();
      if (connection.broken) throw connection.broken;
    }
    return false;
  }

  private async lead(connection: ReaderConnection): Promise<void> {
    const client = connection.client;
    const tuning = this.options.reader;
    const chores = { lagCheck: 0, stateWrite: 0, prune: 0, verify: Date.now() };
    let state = await this.loadState(client);
    const commitTs = await this.queries.tracksCommitTimestamps(client); // for the delay metric
    // Start from a known gate state: closed (the reader is awake and about to read). A gate left
    // armed that nobody tracks would make every writer NOTIFY.
    await this.queries.disarmGate(client);
    let armedAt: bigint | null = null;
    let idleSince: number | null = null;
    let pendingDelayMs = 5;

    while (!this.stopped) {
      if (connection.broken) throw connection.broken;
      const batch = await this.queries.read(client, state.cursor, tuning.batchSize, commitTs);
      if (batch.rows.length > 0) {
        state = await this.apply(client, state, batch.rows);
        idleSince = null;
        // Changes are flowing: the reader polls anyway, so writers stop paying for NOTIFY.
        if (armedAt !== null) {
          await this.queries.disarmGate(client);
          armedAt = null;
        }
      }
      state = await this.housekeeping(client, state, chores, Date.now());
      if (batch.rows.length === tuning.batchSize) continue; // more is waiting: read at once
      if (batch.rows.length > 0) {
        await this.signal.sleep(BUSY_POLL_MS); // let the next few commits gather into one read
        continue;
      }

      this.setLive(true);
      const now = Date.now();
      if (now - chores.lagCheck >= LAG_CHECK_MS) {
        chores.lagCheck = now;
        await this.updateLag(client, state.cursor, now);
      }
      if (armedAt === null) {
        // Arm only after a quiet spell: re-arming at every empty read would make busy writers
        // NOTIFY (and serialise on the notify lock) most of the time.
        idleSince ??= now;
        if (now - idleSince < ARM_AFTER_IDLE_MS) {
          await this.signal.sleep(BUSY_POLL_MS);
          continue;
        }
        armedAt = await this.queries.armGate(client);
        this.signal.take();
        continue; // read once more: a writer may have committed just before the gate opened
      }
      // Writers that saw the gate closed are older than armedAt; until the horizon passes it,
      // one of them may commit without a NOTIFY, so poll briefly instead of sleeping.
      const pending = batch.horizon <= armedAt;
      await this.signal.sleep(pending ? pendingDelayMs : tuning.backstopMs);
      pendingDelayMs = pending ? Math.min(pendingDelayMs * 2, 250) : 5;
      if (this.signal.take() && !this.stopped && !connection.broken) {
        await this.queries.disarmGate(client);
        armedAt = null;
        idleSince = null;
      }
    }
  }

  /** Periodic chores, each on its own clock, whether changes are flowing or not. */
  private async housekeeping(
    client: ReaderConnection['client'],
    state: ReaderState,
    chores: { stateWrite: number; prune: number; verify: number },
    now: number,
  ): Promise<ReaderState> {
    const pruneDue = now - chores.prune >= this.options.reader.pruneIntervalMs;
    // Pruning is bounded by the stored reader state, so store it fresh before each prune.
    if (pruneDue || now - chores.stateWrite >= STATE_WRITE_MS) {
      chores.stateWrite = now;
      await this.queries.writeReaderState(client, {
        indexKey: this.options.keyPrefix,
        leader: this.bus.instanceId,
        generation: state.generation,
        position: state.position,
        cursor: state.cursor,
      });
    }
    if (pruneDue) {
      chores.prune = now;
      await this.prune(client, state);
    }
    if (now - chores.verify >= this.options.reader.backstopMs) {
      chores.verify = now;
      return this.verifyIndex(client, state);
    }
    return state;
  }

  private async loadState(client: ReaderConnection['client']): Promise<ReaderState> {
    const head = await this.index.head();
    return head ? this.stateOf(head) : this.rebuild(client, EMPTY_INDEX);
  }

  private stateOf(head: IndexHead): ReaderState {
    return {
      generation: head.generation,
      position: head.position,
      cursor: { xid: head.readerXid, id: head.readerId },
    };
  }

  /**
   * Starts a new generation at the end of the committed change log. Every cursor of the old one
   * gets a 409, so its clients reload the data anyway: replaying the retained log into the new
   * generation would only send reloading clients old changes again, and cost time and index
   * memory in proportion to the retention.
   */
  private async rebuild(client: ReaderConnection['client'], reason: string): Promise<ReaderState> {
    const cursor = await this.queries.committedEnd(client);
    const generation = Date.now().toString(36) + randomBytes(3).toString('hex');
    const message = `starting index generation ${generation} at the end of the change log: ${reason}`;
    // A first start is routine; a lost index is worth a warning.
    if (reason === EMPTY_INDEX) this.logger.log(message);
    else this.logger.warn(message);
    await this.index.startGeneration(generation);
    this.retention.reset();
    this.bus.publish({ kind: 'wake-all', reason: 'generation' });
    return { generation, position: 0, cursor };
  }

  private async apply(
    client: ReaderConnection['client'],
    state: ReaderState,
    rows: ChangeLogRow[],
  ): Promise<ReaderState> {
    const last = rows[rows.length - 1];
    const result = await this.index.append({
      generation: state.generation,
      expectedPosition: state.position,
      changes: rows.map((r) => ({ feed: r.feed, resourceId: r.resourceId })),
      readerXid: last.xid,
      readerId: last.id,
    });
    if (!result.ok) {
      if (result.reason === 'lost') return this.rebuild(client, 'the index lost its generation');
      // Another writer moved the head (a leader that has not noticed it lost the lock yet):
      // continue from the index's own checkpoint, which is consistent with its positions.
      this.logger.warn('index head moved under the reader; resuming from the index checkpoint');
      return this.loadState(client);
    }
    const position = result.head.position;
    this.retention.record(position);
    this.bus.publish({
      kind: 'changes',
      generation: state.generation,
      position,
      feeds: [...new Set(rows.map((r) => r.feed))],
      committedAt: newestCommit(rows),
    });
    return { generation: state.generation, position, cursor: { xid: last.xid, id: last.id } };
  }

  /** Notices an index that was wiped or moved on (Redis restart, FLUSHALL) while idle. */
  private async verifyIndex(
    client: ReaderConnection['client'],
    state: ReaderState,
  ): Promise<ReaderState> {
    const head = await this.index.head();
    if (head === null || head.generation !== state.generation) {
      return this.rebuild(client, 'the index lost its generation');
    }
    return head.position === state.position ? state : this.stateOf(head);
  }

  private async updateLag(
    client: ReaderConnection['client'],
    cursor: ChangeLogCursor,
    now: number,
  ): Promise<void> {
    const held = await this.queries.heldBack(client, cursor);
    const stalledSince = held.rows > 0 ? (this.currentLag.stalledSince ?? now) : null;
    this.currentLag = {
      heldBackRows: held.rows,
      oldestOpenTransactionMs: held.oldestOpenMs,
      stalledSince,
    };
  }

  private async prune(client: ReaderConnection['client'], state: ReaderState): Promise<void> {
    const { maxAgeMs, maxRows } = this.options.retention;
    const deleted = await this.queries.prune(client, maxAgeMs, maxRows);
    const floor = this.retention.floor(state.position);
    if (floor > 0) await this.index.trim(floor);
    if (deleted > 0) this.logger.debug(`pruned ${deleted} change-log rows; index floor ${floor}`);
  }
}

/** The newest commit time among the rows, for the commit-to-delivery metric. */
function newestCommit(rows: ChangeLogRow[]): number | undefined {
  let newest: number | undefined;
  for (const r of rows) {
    if (r.committedAt !== undefined && (newest === undefined || r.committedAt > newest)) {
      newest = r.committedAt;
    }
  }
  return newest;
}
