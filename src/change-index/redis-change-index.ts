import {
  assertCheckpoint,
  assertGeneration,
  assertPosition,
  changesAnswer,
} from './change-index.checks';
import { createHash } from 'node:crypto';
import type {
  AppendBatch,
  AppendResult,
  ChangedResource,
  ChangeIndex,
  FeedChanges,
  FeedPosition,
  IndexHead,
  ReaderCheckpoint,
} from './change-index.interface';
import {
  APPEND_SCRIPT,
  CHANGES_SINCE_SCRIPT,
  CLAIM_ID_SCRIPT,
  FEED_POSITION_SCRIPT,
  START_GENERATION_SCRIPT,
  TRIM_SCRIPT,
} from './redis-change-index.scripts';
import type { RedisClient } from './redis-connection';

export interface RedisChangeIndexOptions {
  /** Quit the client in close(); leave false when the client is shared with other code. */
  ownsClient?: boolean;
}

class LuaScript {
  readonly sha: string;
  constructor(
    readonly source: string,
    readonly numberOfKeys: number,
  ) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }
}

const scripts = {
  append: new LuaScript(APPEND_SCRIPT, 5),
  feedPosition: new LuaScript(FEED_POSITION_SCRIPT, 3),
  changesSince: new LuaScript(CHANGES_SINCE_SCRIPT, 3),
  startGeneration: new LuaScript(START_GENERATION_SCRIPT, 5),
  trim: new LuaScript(TRIM_SCRIPT, 5),
  claimId: new LuaScript(CLAIM_ID_SCRIPT, 1),
};

/**
 * Work units (feeds visited, members, marks and floors removed, feeds unlinked) per trim or
 * generation-start call: a few milliseconds of Redis time, so neither blocks other clients for
 * long, however many feeds the index holds.
 */
const STEP_BUDGET = 1000;

type Reply = Array<string | Reply>;

/**
 * ChangeIndex in Redis, shared by every instance. Each call is one Lua script, so one round trip
 * and atomic. Scripts derive feed keys from the prefix: on a Redis Cluster the prefix must carry
 * a hash tag (indexKeys does that), so every key of the index is in one slot.
 * Redis errors (connection lost, timeouts) are thrown, not mapped to `unavailable`.
 */
export class RedisChangeIndex implements ChangeIndex {
  readonly shared = true;

  private readonly metaKey: string;
  private readonly oldestKey: string;
  private readonly floorsKey: string;
  private readonly marksKey: string;
  private readonly goneKey: string;

  constructor(
    private readonly client: RedisClient,
    private readonly keyPrefix: string,
    private readonly options: RedisChangeIndexOptions = {},
  ) {
    this.metaKey = `${keyPrefix}meta`;
    this.oldestKey = `${keyPrefix}oldest`;
    this.floorsKey = `${keyPrefix}floors`;
    this.marksKey = `${keyPrefix}marks`;
    this.goneKey = `${keyPrefix}gone`;
  }

  async head(): Promise<IndexHead | null> {
    const [generation, position, readerXid, readerId, floor] = await this.client.hmget(
      this.metaKey,
      'generation',
      'position',
      'readerXid',
      'readerId',
      'floor',
    );
    if (generation === null) return null;
    return {
      generation,
      position: toInt(position),
      readerXid: readerXid ?? '0',
      readerId: readerId ?? '0',
      floor: toInt(floor),
    };
  }

  async startGeneration(generation: string, checkpoint: ReaderCheckpoint): Promise<IndexHead> {
    assertGeneration(generation);
    assertCheckpoint(checkpoint);
    const { readerXid, readerId } = checkpoint;
    const args = [this.keyPrefix, generation, readerXid, readerId, String(STEP_BUDGET)];
    // Short steps however many feeds the old generation had; one cut short is finished by the
    // next start (its meta is gone already, so the index reads as lost until then).
    let started = false;
    while (!started) {
      started = Number(await this.run(scripts.startGeneration, this.indexKeys(), args)) === 1;
    }
    return { generation, position: 0, readerXid, readerId, floor: 0 };
  }

  async append(batch: AppendBatch): Promise<AppendResult> {
    assertPosition(batch.expectedPosition, 'expectedPosition');
    const writtenAt = batch.writtenAt ?? Date.now();
    if (!Number.isFinite(writtenAt)) {
      throw new RangeError(`writtenAt must be a finite number, got ${writtenAt}`);
    }
    const args = [
      this.keyPrefix,
      batch.generation,
      String(batch.expectedPosition),
      batch.readerXid,
      batch.readerId,
      writtenAt.toFixed(0),
    ];
    for (const change of batch.changes) args.push(change.feed, change.resourceId);
    const reply = await this.run(scripts.append, this.indexKeys(), args);
    if (reply[0] === 'lost' || reply[0] === 'conflict') return { ok: false, reason: reply[0] };
    const [, generation, position, readerXid, readerId, floor] = reply as string[];
    return {
      ok: true,
      head: { generation, position: toInt(position), readerXid, readerId, floor: toInt(floor) },
    };
  }

  async feedPosition(feed: string): Promise<FeedPosition> {
    const reply = await this.run(scripts.feedPosition, this.feedKeys(feed), [feed]);
    if (reply[0] === 'unavailable') return { kind: 'unavailable' };
    const [, generation, position, floor] = reply as string[];
    return { kind: 'position', generation, position: toInt(position), floor: toInt(floor) };
  }

  async changesSince(
    feed: string,
    generation: string,
    position: number,
    limit: number,
  ): Promise<FeedChanges> {
    assertPosition(position, 'position');
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw new RangeError(`limit must be a positive integer, got ${limit}`);
    }
    const reply = await this.run(scripts.changesSince, this.feedKeys(feed), [
      feed,
      generation,
      String(position),
      String(limit),
    ]);
    if (reply[0] === 'unavailable') return { kind: 'unavailable' };
    if (reply[0] === 'refetch') {
      const [, reason, current, feedPosition] = reply as string[];
      return {
        kind: 'refetch',
        reason: reason as 'generation' | 'trimmed' | 'ahead',
        generation: current,
        feedPosition: toInt(feedPosition),
      };
    }
    const [, current, feedMaxText, rows] = reply as [string, string, string, string[]];
    const feedMax = toInt(feedMaxText);
    const changed: ChangedResource[] = [];
    for (let i = 0; i < rows.length; i += 2) {
      changed.push({ resourceId: rows[i], position: toInt(rows[i + 1]) });
    }
    return changesAnswer(current, position, feedMax, changed, limit);
  }

  async expiredPosition(writtenBefore: number): Promise<number> {
    const [position] = await this.client.zrange(
      this.marksKey,
      `(${writtenBefore.toFixed(0)}`,
      '-inf',
      'BYSCORE',
      'REV',
      'LIMIT',
      0,
      1,
    );
    return toInt(position);
  }

  async trim(position: number, forget = position): Promise<void> {
    assertPosition(position, 'position');
    assertPosition(forget, 'forget');
    const args = [this.keyPrefix, String(position), String(forget), String(STEP_BUDGET)];
    // Each call is one short atomic step; the floor is raised by the first, so reads stay exact
    // between steps, and a trim cut short is finished by the next one.
    let more = true;
    while (more) more = Number(await this.run(scripts.trim, this.indexKeys(), args)) === 1;
  }

  async claimId(candidate: string): Promise<string> {
    // Not wiped by startGeneration: only a new or flushed store gets a new id.
    const id = await this.run(scripts.claimId, [`${this.keyPrefix}id`], [candidate]);
    return String(id);
  }

  async close(): Promise<void> {
    if (!this.options.ownsClient || this.client.status === 'end') return;
    // quit() can resolve before the socket closes (e.g. while still connecting): wait for 'end'.
    const ended = new Promise<void>((resolve) => this.client.once('end', () => resolve()));
    try {
      await this.client.quit();
    } catch {
      this.client.disconnect();
    }
    await ended;
  }

  private indexKeys(): string[] {
    return [this.metaKey, this.oldestKey, this.floorsKey, this.marksKey, this.goneKey];
  }

  private feedKeys(feed: string): string[] {
    return [this.metaKey, `${this.keyPrefix}feed:${feed}`, this.floorsKey];
  }

  /** EVALSHA, falling back to EVAL once when the server does not have the script cached. */
  private async run(script: LuaScript, keys: string[], args: string[]): Promise<Reply> {
    const n = script.numberOfKeys;
    try {
      return (await this.client.evalsha(script.sha, n, ...keys, ...args)) as Reply;
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return (await this.client.eval(script.source, n, ...keys, ...args)) as Reply;
    }
  }
}

function toInt(value: string | null | undefined): number {
  if (value === null || value === undefined) return 0;
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new Error(`change index holds a bad position: ${value}`);
  return n;
}
