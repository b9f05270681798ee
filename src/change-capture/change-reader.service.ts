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
import { InjectIndexKeys, InjectPollingOptions } from '../polling.tokens';
import type { ResolvedOptions } from '../resolve-options';
import type { ChangeLogCursor, ChangeLogRow } from './change-log-cursor';
import { ChangeLogQueries } from './change-log.queries';
import { ChangeLogPruner } from './change-log-pruner';
import type { IndexKeys } from './index-keys';
import { postgresClientConfig } from './postgres-config';
import { ReaderConnection } from './reader-connection';
import { checkTracking } from './schema/check-tracking';
import { installTracking } from './schema/install-tracking';
import { wakeChannel } from './schema/schema-name';
import { MIN_READ_PAUSE_MS, pauseAfterRead } from './read-cadence';
import { IDLE_POLL_MS, WakeGate } from './wake-gate';
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

/**
 * The lag as measured at the last check: start times, so its ages can be taken at any moment. On
 * the monotonic clock (performance.now): a step of the wall clock must not change an age.
 */
interface MeasuredLag {
  heldBackRows: number;
  /** When the oldest open writing transaction began, null when none is. */
  oldestOpenAt: number | null;
  /** Since when changes have been held back, null when none are. */
  stalledAt: number | null;
}

interface ReaderState {
  generation: string;
  position: number;
  cursor: ChangeLogCursor;
}

const LAG_CHECK_MS = 250;
const NO_LAG: MeasuredLag = { heldBackRows: 0, oldestOpenAt: null, stalledAt: null };
/** Least time between two clearings of gone readers' gate bits while changes flow. */
const GATE_SWEEP_MS = 1000;
/** How long reads must come back empty before the reader arms the wake gate and sleeps. */
const ARM_AFTER_IDLE_MS = 50;
/**
 * How long committed changes may wait behind an open transaction before the reader stops
 * treating that as writers at work and arms the gate (a long report, a session idle in a
 * transaction).
 */
const ARM_AFTER_HELD_BACK_MS = 1000;
const EMPTY_INDEX = 'the index is empty';
const STATE_WRITE_MS = 5000;
const MAX_RECONNECT_MS = 5000;
/** How long a stopping reader may take to finish its lead (and clear its gate bit) by itself. */
const STOP_GRACE_MS = 1000;

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
  /**
   * Settles when the app stops: a connect under way is given up, a reconnect backoff ends (the
   * reader's signal, which the old connection's end wakes, must not cut the backoff short).
   */
  private readonly stopping: Promise<void>;
  private markStopping!: () => void;
  private readonly pruner: ChangeLogPruner;
  private running: Promise<void> | null = null;
  private stopped = false;
  private connection: ReaderConnection | null = null;
  private liveNow = false;
  private liveWaiters: (() => void)[] = [];
  private currentRole: ReaderRole = 'starting';
  /** What this reader stores as the index's id if the store has none (see ChangeIndex.claimId). */
  private readonly candidateId = randomBytes(6).toString('hex');
  /** The index id this reader holds the leader lock for. */
  private leadingId = '';
  /** The index head this process last announced on the bus (as leader). */
  private announced: { generation: string; position: number } | null = null;
  private currentLag: MeasuredLag = NO_LAG;

  constructor(
    @InjectPollingOptions() private readonly options: ResolvedOptions,
    @InjectChangeIndex() private readonly index: ChangeIndex,
    private readonly bus: ChangeBus,
    @InjectIndexKeys() private readonly keys: IndexKeys,
  ) {
    this.queries = new ChangeLogQueries(options.schema);
    this.stopping = new Promise((resolve) => (this.markStopping = resolve));
    this.pruner = new ChangeLogPruner(postgresClientConfig(options.postgres), options, index, () =>
      this.announceTrim(),
    );
  }

  get role(): ReaderRole {
    return this.currentRole;
  }

  get live(): boolean {
    return this.liveNow;
  }

  /** Ages are taken now, not at the last read, so they agree with each other whenever asked. */
  get lag(): ReaderLag {
    const { heldBackRows, oldestOpenAt, stalledAt } = this.currentLag;
    const mono = performance.now();
    const oldestOpenTransactionMs = oldestOpenAt === null ? 0 : Math.max(0, mono - oldestOpenAt);
    // Epoch ms on today's wall clock, so that Date.now() - stalledSince is the stall's age.
    const stalledSince = stalledAt === null ? null : Date.now() - (mono - stalledAt);
    return { heldBackRows, oldestOpenTransactionMs, stalledSince };
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
        // The server gives up waiting for a table lock before the client's query timeout does.
        const { queryTimeoutMs } = this.options.reader;
        await installTracking(
          setup.client,
          this.options.schema,
          this.options.tables,
          (queryTimeoutMs * 3) / 4,
        );
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
    this.markStopping();
    // A lead that ends by itself clears its gate bit first; a connection that does not answer
    // (half-open) is cut after a moment instead.
    let grace: NodeJS.Timeout | undefined;
    await Promise.race([
      this.running,
      new Promise((resolve) => (grace = setTimeout(resolve, STOP_GRACE_MS))),
    ]);
    clearTimeout(grace);
    this.connection?.close();
    await this.running;
    await this.pruner.close();
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
          this.stopping,
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
        // Only a leader measures the lag: a follower (or the next leader) must not report the last
        // measurement of this lead, whose ages would keep growing, as current.
        this.currentLag = NO_LAG;
      }
      if (this.stopped) break;
      await this.pauseUnlessStopping(backoffMs);
      backoffMs = Math.min(backoffMs * 2, MAX_RECONNECT_MS);
    }
  }

  private async pauseUnlessStopping(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise((resolve) => (timer = setTimeout(resolve, ms))),
      this.stopping,
    ]);
    clearTimeout(timer);
  }

  /** Waits for the leader lock; returns false when stopped first. Follows the index meanwhile. */
  private async becomeLeader(connection: ReaderConnection): Promise<boolean> {
    while (!this.stopped) {
      // One lock per index: named after the change log it is built from and the store it lives
      // in (two Redis servers with one keyPrefix hold two indexes, each needs its own leader).
      const id = await this.index.claimId(this.candidateId);
      const [row] = await connection.query<{ ok: boolean }>(
        'SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS ok',
        [`${this.keys.leaderLock}${id}`],
      );
      if (row.ok) {
        this.leadingId = id;
        return true; // lead() wakes the waiters if the head was not announced (adopt)
      }
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
    // Chores keep time on the monotonic clock: after a step of the wall clock back (NTP, a VM
    // resumed) none would be due for as long, no lag measured, no state written, no sweep.
    const chores = {
      lagCheck: -Infinity,
      stateWrite: -Infinity,
      verify: performance.now(),
      gateSweep: -Infinity,
    };
    let state = await this.loadState(client);
    const commitTs = await this.queries.tracksCommitTimestamps(client); // for the delay metric
    // This reader's own bit of the wake gate, cleared: it is awake and about to read.
    const gate = await WakeGate.open(client, this.options.schema);
    let armedAt: bigint | null = null;
    let idleSince: number | null = null;
    let heldBackSince: number | null = null;
    let pendingDelayMs = 5;

    while (!this.stopped) {
      if (connection.broken) throw connection.broken;
      // This read sees every commit so far, so it answers every wake so far. Left set, the flag
      // made each pause below end at once: NOTIFYs sent while the gate was being closed kept the
      // reader reading back to back for as long as changes flowed.
      const woken = this.signal.take();
      const readStarted = performance.now();
      const batch = await this.queries.read(client, state.cursor, tuning.batchSize, commitTs);
      let readMs = 0;
      if (batch.rows.length > 0) {
        state = await this.apply(client, state, batch.rows);
        readMs = performance.now() - readStarted;
        idleSince = null;
        heldBackSince = null;
        // Changes are flowing: the reader polls anyway, so writers stop paying for NOTIFY.
        if (armedAt !== null) {
          await gate.disarm(client);
          armedAt = null;
        } else if (woken && gate.notifies && readStarted - chores.gateSweep >= GATE_SWEEP_MS) {
          // A NOTIFY while this reader's bit is clear: another bit is set, maybe one of a reader
          // that is gone (disarm clears those), which would make writers NOTIFY for nobody.
          chores.gateSweep = readStarted;
          await gate.disarm(client);
        }
      }
      state = await this.housekeeping(client, state, chores, performance.now());
      if (
        batch.rows.length > 0 &&
        !batch.heldBack &&
        performance.now() - chores.lagCheck >= LAG_CHECK_MS
      ) {
        // Changes flow and none waits behind an open transaction: measure the lag here too, or a
        // stall that ended would be reported (with a growing age) until a read comes back empty.
        chores.lagCheck = performance.now();
        await this.updateLag(client, state.cursor, false);
      }
      if (batch.rows.length === tuning.batchSize) continue; // more is waiting: read at once
      if (batch.rows.length > 0) {
        // Changes are flowing and no NOTIFY will come: read again after a pause that keeps the
        // reader's share of the machine bounded (read-cadence.ts).
        await this.signal.sleep(pauseAfterRead(readMs));
        continue;
      }

      this.setLive(true);
      const now = performance.now();
      if (now - chores.lagCheck >= LAG_CHECK_MS) {
        chores.lagCheck = now;
        await this.updateLag(client, state.cursor, true);
      }
      if (armedAt === null && batch.heldBack) {
        // Nothing readable, but committed changes wait behind an older writer that has not
        // committed yet: writers are busy (on a loaded machine one can stall for tens of ms).
        // Arming now would make every writer NOTIFY until the next read; read again instead.
        heldBackSince ??= now;
        if (now - heldBackSince < ARM_AFTER_HELD_BACK_MS) {
          await this.signal.sleep(MIN_READ_PAUSE_MS);
          continue;
        }
      } else {
        heldBackSince = null;
      }
      if (!gate.notifies) {
        // No NOTIFY to wait for (a server that allows PREPARE TRANSACTION, or no free gate slot).
        await this.signal.sleep(IDLE_POLL_MS);
        this.signal.take();
        continue;
      }
      if (armedAt === null) {
        // Arm only after a quiet spell: re-arming at every empty read would make busy writers
        // NOTIFY (and serialise on the notify lock) most of the time.
        idleSince ??= now;
        if (now - idleSince < ARM_AFTER_IDLE_MS) {
          await this.signal.sleep(MIN_READ_PAUSE_MS);
          continue;
        }
        armedAt = await gate.arm(client);
        this.signal.take();
        continue; // read once more: a writer may have committed just before the gate opened
      }
      // Writers that saw the gate closed are older than armedAt; until the horizon passes it,
      // one of them may commit without a NOTIFY, so poll briefly instead of sleeping.
      const pending = batch.horizon <= armedAt;
      await this.signal.sleep(pending ? pendingDelayMs : tuning.backstopMs);
      pendingDelayMs = pending ? Math.min(pendingDelayMs * 2, 250) : 5;
      if (this.signal.take() && !this.stopped && !connection.broken) {
        await gate.disarm(client);
        armedAt = null;
        idleSince = null;
      }
    }
    // Stopping: left set, its bit would make every writer NOTIFY a reader that is gone until
    // another reader sweeps it (none may come: the last instance was stopped).
    if (armedAt !== null && !connection.broken) await gate.disarm(client);
  }

  /** Periodic chores, each on its own clock, whether changes are flowing or not. */
  private async housekeeping(
    client: ReaderConnection['client'],
    state: ReaderState,
    chores: { stateWrite: number; verify: number },
    now: number,
  ): Promise<ReaderState> {
    // The pruner keeps its own clock (not reset by a reconnect) and works in the background.
    const pruneDue = this.pruner.due(now);
    // Pruning is bounded by the stored reader state, so store it fresh before each prune.
    if (pruneDue || now - chores.stateWrite >= STATE_WRITE_MS) {
      chores.stateWrite = now;
      await this.queries.writeReaderState(client, {
        // One row per index: two indexes of this change log must never share one.
        indexKey: `${this.keys.readerState}${this.leadingId}`,
        leader: this.bus.instanceId,
        generation: state.generation,
        position: state.position,
        cursor: state.cursor,
      });
    }
    if (pruneDue) this.pruner.start(now);
    if (now - chores.verify >= this.options.reader.backstopMs) {
      chores.verify = now;
      return this.verifyIndex(client, state);
    }
    return state;
  }

  private async loadState(client: ReaderConnection['client']): Promise<ReaderState> {
    const head = await this.index.head();
    if (head === null) return this.rebuild(client, EMPTY_INDEX);
    // The index was built from transactions this database never ran when its checkpoint lies past
    // every xid the database has handed out (a restored backup, a standby promoted after
    // asynchronous replication: same change-log identity, shorter history). Following it would
    // skip the database's next transactions, whose xids sit below that checkpoint.
    if (BigInt(head.readerXid) >= (await this.queries.nextXid(client))) {
      return this.rebuild(client, 'the index is ahead of the change log (a restored database?)');
    }
    // Pruning spares only what live readers (state written within 10 minutes) have not read: an
    // index whose readers were away longer may have lost rows after its checkpoint.
    const pruned = await this.queries.prunedThrough(client);
    if (pruned !== null && before({ xid: head.readerXid, id: head.readerId }, pruned)) {
      return this.rebuild(client, 'the change log was pruned past the index checkpoint');
    }
    return this.adopt(head);
  }

  /**
   * Follows on from a head this reader did not write just now. Unless this process announced that
   * very head itself (its own reconnect), another leader wrote it and may have died between the
   * append and its announcement: wake every instance's waiters to re-check against the index, or
   * they sleep until their wait ends.
   */
  private adopt(head: IndexHead): ReaderState {
    const known = this.announced;
    if (known?.generation !== head.generation || known.position !== head.position) {
      this.bus.publish({ kind: 'wake-all', reason: 'takeover' });
      this.announced = { generation: head.generation, position: head.position };
    }
    return this.stateOf(head);
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
    await this.checkIndexId();
    // Never below the pruned-through mark: a log that pruning emptied ends at (0, 0), and a
    // generation starting there would look pruned past at the next lead and start again.
    const end = await this.queries.committedEnd(client);
    const pruned = await this.queries.prunedThrough(client);
    const cursor = pruned !== null && before(end, pruned) ? pruned : end;
    const generation = Date.now().toString(36) + randomBytes(3).toString('hex');
    const message = `starting index generation ${generation} at the end of the change log: ${reason}`;
    // A first start is routine; a lost index is worth a warning.
    if (reason === EMPTY_INDEX) this.logger.log(message);
    else this.logger.warn(message);
    // The checkpoint goes into the index with the generation: a reader that reconnects or takes
    // over before the first append resumes here instead of replaying the retained log into it.
    await this.index.startGeneration(generation, { readerXid: cursor.xid, readerId: cursor.id });
    this.bus.publish({ kind: 'wake-all', reason: 'generation' });
    this.announced = { generation, position: 0 };
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
    this.bus.publish({
      kind: 'changes',
      generation: state.generation,
      position,
      feeds: [...new Set(rows.map((r) => r.feed))],
      committedAt: newestCommit(rows),
    });
    this.announced = { generation: state.generation, position };
    return { generation: state.generation, position, cursor: { xid: last.xid, id: last.id } };
  }

  /** Tells every instance the index floor moved: quiet feeds' heads moved with it. */
  private announceTrim(): void {
    const at = this.announced ?? { generation: '', position: 0 };
    this.bus.publish({ kind: 'changes', ...at, feeds: [], trimmed: true });
  }

  /**
   * Whether this reader still leads the index under its id: a wiped store gets this reader's id
   * back; one that another instance gave a new id first is led under that id's lock now, so this
   * reader elects again rather than write the index beside it.
   */
  private async checkIndexId(): Promise<void> {
    if (!this.index.shared || (await this.index.claimId(this.leadingId)) === this.leadingId) return;
    throw new Error('the index was re-created by another instance; electing its leader again');
  }

  /** Notices an index that was wiped or moved on (Redis restart, FLUSHALL) while idle. */
  private async verifyIndex(
    client: ReaderConnection['client'],
    state: ReaderState,
  ): Promise<ReaderState> {
    await this.checkIndexId();
    const head = await this.index.head();
    if (head === null || head.generation !== state.generation) {
      return this.rebuild(client, 'the index lost its generation');
    }
    return head.position === state.position ? state : this.adopt(head);
  }

  private async updateLag(
    client: ReaderConnection['client'],
    cursor: ChangeLogCursor,
    countHeld: boolean,
  ): Promise<void> {
    // Taken before the query: the transaction's age the server reports is measured after it.
    const mono = performance.now();
    // Without countHeld the read just showed no change waiting behind an open transaction (rows
    // after the cursor are unread, not held back).
    const held = await this.queries.heldBack(client, cursor, countHeld);
    const stalledAt = held.rows > 0 ? (this.currentLag.stalledAt ?? mono) : null;
    this.currentLag = {
      heldBackRows: held.rows,
      oldestOpenAt: held.oldestOpenMs > 0 ? mono - held.oldestOpenMs : null,
      stalledAt,
    };
  }
}

/** Whether change-log position `a` comes before `b` in (xid, id) order. */
function before(a: ChangeLogCursor, b: ChangeLogCursor): boolean {
  const [ax, bx] = [BigInt(a.xid), BigInt(b.xid)];
  return ax < bx || (ax === bx && BigInt(a.id) < BigInt(b.id));
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
