import { createHash } from 'node:crypto';
import type { Client } from 'pg';
import { assertSchemaName } from './schema/schema-name';
import { CHANGE_LOG_START, type ChangeLogCursor, type ChangeLogRow } from './change-log-cursor';

export interface ReadResult {
  /** xmin of the statement's own snapshot: every xid below it has finished. */
  horizon: bigint;
  rows: ChangeLogRow[];
  /** Committed changes wait at or above the horizon, behind a transaction that is still open. */
  heldBack: boolean;
}

export interface ReaderStateRow {
  indexKey: string;
  leader: string;
  generation: string;
  position: number;
  cursor: ChangeLogCursor;
}

/**
 * The `polling_reader_state` row that records how far the change log was pruned (no index is
 * named '': keyPrefix is never empty). Not a reader: it never bounds pruning.
 */
const PRUNED_MARK = '';

interface NamedStatement {
  name: string;
  text: string;
}

/**
 * A prepared statement, planned once per connection: the reader runs its read every few ms while
 * changes flow, and planning it each time cost about as much as running it. Named after its text,
 * so two schemas or variants never share a name on one connection.
 */
function named(text: string): NamedStatement {
  return {
    name: `polling_read_${createHash('md5').update(text).digest('hex').slice(0, 16)}`,
    text,
  };
}

/** Every statement the change reader runs against the change log. All are parameterised. */
export class ChangeLogQueries {
  private readonly s: string;
  private readonly readSql: NamedStatement;
  private readonly readSqlCommitTs: NamedStatement;

  constructor(schema: string) {
    this.s = `"${assertSchemaName(schema)}"`;
    // One statement, one snapshot: the horizon and the rows come from the same snapshot, so a row
    // below the horizon that is not returned can never appear later (DESIGN.md §2).
    // age_ms (for the delivery-delay metric) is measured on the server's own clock, so the app's
    // clock need not agree with it; it is computed only for the returned rows.
    // held_back looks at the newest row only: if any row after the cursor sits at or above the
    // horizon, the newest does too. One backward index probe, whatever the planner's statistics
    // (an EXISTS over the range was planned as a scan of the whole log while the table had none,
    // as after a TRUNCATE or on a young log: every read cost O(log size) then).
    const read = (committed: string) => `
      SELECT h.horizon::text AS horizon, c.xid::text AS xid, c.id::text AS id, c.feed, c.resource_id,
        (extract(epoch FROM clock_timestamp() - ${committed}) * 1000)::float8 AS age_ms,
        coalesce((SELECT (n.xid, n.id) > ($1::text::xid8, $2::bigint) AND n.xid >= h.horizon
                  FROM (SELECT xid, id FROM ${this.s}.polling_changes
                        ORDER BY xid DESC, id DESC LIMIT 1) n), false) AS held_back
      FROM (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS horizon) h
      LEFT JOIN LATERAL (
        SELECT xid, id, feed, resource_id, changed_at FROM ${this.s}.polling_changes
        WHERE (xid, id) > ($1::text::xid8, $2::bigint) AND xid < h.horizon
        ORDER BY xid, id
        LIMIT $3
      ) c ON true`;
    this.readSql = named(read('c.changed_at'));
    this.readSqlCommitTs = named(
      read('coalesce(pg_xact_commit_timestamp(xid(c.xid)), c.changed_at)'),
    );
  }

  /**
   * Reads the next committed changes. `commitTimestamps`: the server tracks commit timestamps
   * (track_commit_timestamp = on), so a change's commit time is known exactly; otherwise its
   * writing transaction's start (`changed_at`) stands in for it.
   */
  async read(
    client: Client,
    after: ChangeLogCursor,
    limit: number,
    commitTimestamps = false,
  ): Promise<ReadResult> {
    const { name, text } = commitTimestamps ? this.readSqlCommitTs : this.readSql;
    const { rows } = await client.query({ name, text, values: [after.xid, after.id, limit] });
    const readAt = Date.now();
    const horizon = BigInt(rows[0].horizon);
    const changes: ChangeLogRow[] = [];
    for (const r of rows) {
      if (r.xid !== null)
        changes.push({
          xid: r.xid,
          id: r.id,
          feed: r.feed,
          resourceId: r.resource_id,
          committedAt: readAt - Math.max(0, r.age_ms),
        });
    }
    return { horizon, rows: changes, heldBack: rows[0].held_back === true };
  }

  /**
   * The last change below the commit horizon, read in one snapshot: every transaction below the
   * horizon has ended, so no change at or before this cursor can still appear. A reader starting
   * here skips the log's history and misses nothing that commits later.
   */
  async committedEnd(client: Client): Promise<ChangeLogCursor> {
    const { rows } = await client.query<{ xid: string | null; id: string | null }>(`
      SELECT c.xid::text AS xid, c.id::text AS id
      FROM (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS horizon) h
      LEFT JOIN LATERAL (
        SELECT xid, id FROM ${this.s}.polling_changes
        WHERE xid < h.horizon
        ORDER BY xid DESC, id DESC
        LIMIT 1
      ) c ON true`);
    const [end] = rows;
    return end.xid === null || end.id === null ? CHANGE_LOG_START : { xid: end.xid, id: end.id };
  }

  /** The next transaction id the database hands out: every xid of its history is below it. */
  async nextXid(client: Client): Promise<bigint> {
    const { rows } = await client.query(
      'SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS next',
    );
    return BigInt(rows[0].next);
  }

  /** Whether the server records commit timestamps (a server setting; needs a restart to change). */
  async tracksCommitTimestamps(client: Client): Promise<boolean> {
    const { rows } = await client.query(
      "SELECT current_setting('track_commit_timestamp') = 'on' AS on",
    );
    return rows[0].on === true;
  }

  /** Committed changes the reader cannot take yet because an older transaction is still open. */
  async heldBack(
    client: Client,
    after: ChangeLogCursor,
    countRows = true,
  ): Promise<{ rows: number; oldestOpenMs: number }> {
    const { rows } = await client.query(
      `SELECT
         CASE WHEN $3::boolean THEN (SELECT count(*) FROM (SELECT 1 FROM ${this.s}.polling_changes
            WHERE (xid, id) > ($1::text::xid8, $2::bigint) LIMIT 100000) x)::int ELSE 0 END AS rows,
         coalesce(extract(epoch FROM now() - least(
           (SELECT min(xact_start) FROM pg_stat_activity WHERE backend_xid IS NOT NULL),
           (SELECT min(prepared) FROM pg_prepared_xacts))) * 1000, 0)::float8 AS oldest`,
      [after.xid, after.id, countRows],
    );
    return { rows: rows[0].rows, oldestOpenMs: rows[0].oldest };
  }

  async writeReaderState(client: Client, state: ReaderStateRow): Promise<void> {
    await client.query(
      `INSERT INTO ${this.s}.polling_reader_state
         (index_key, leader, generation, position, read_xid, read_id, updated_at)
       VALUES ($1, $2, $3, $4, $5::text::xid8, $6, now())
       ON CONFLICT (index_key) DO UPDATE SET leader = EXCLUDED.leader,
         generation = EXCLUDED.generation, position = EXCLUDED.position,
         read_xid = EXCLUDED.read_xid, read_id = EXCLUDED.read_id, updated_at = now()`,
      [
        state.indexKey,
        state.leader,
        state.generation,
        state.position,
        state.cursor.xid,
        state.cursor.id,
      ],
    );
  }

  /**
   * The last row every live reader has consumed: the lowest checkpoint of any index sharing this
   * change log whose reader state was written within the last 10 minutes. Null when none is live
   * (then nothing may be pruned).
   */
  async pruneBound(client: Client): Promise<ChangeLogCursor | null> {
    const { rows } = await client.query<{ xid: string; id: string }>(
      `SELECT read_xid::text AS xid, read_id::text AS id FROM ${this.s}.polling_reader_state
       WHERE updated_at > now() - interval '10 minutes' AND index_key <> $1
       ORDER BY read_xid, read_id LIMIT 1`,
      [PRUNED_MARK],
    );
    return rows[0] ?? null;
  }

  /**
   * The last change-log row pruning deleted (null before any): an index whose checkpoint lies
   * below it cannot have read every change after it (its reader was not live while they went).
   */
  async prunedThrough(client: Client): Promise<ChangeLogCursor | null> {
    const { rows } = await client.query<{ xid: string; id: string }>(
      `SELECT read_xid::text AS xid, read_id::text AS id FROM ${this.s}.polling_reader_state
       WHERE index_key = $1`,
      [PRUNED_MARK],
    );
    return rows[0] ?? null;
  }

  /**
   * Deletes reader-state rows not written for a day (replicas with an in-memory index have one
   * each, named per process): pruning ignores them after 10 minutes already. Skipped for a role
   * without DELETE on the table.
   */
  async forgetGoneReaders(client: Client): Promise<void> {
    try {
      await client.query(
        `DELETE FROM ${this.s}.polling_reader_state
         WHERE updated_at < now() - interval '1 day' AND index_key <> $1`,
        [PRUNED_MARK],
      );
    } catch (error) {
      if ((error as { code?: string }).code !== '42501') throw error; // insufficient privilege
    }
  }

  /** The newest row beyond the newest `maxRows` (it and all before it are past retention). */
  async overflowEnd(client: Client, maxRows: number): Promise<ChangeLogCursor | null> {
    const { rows } = await client.query<{ xid: string; id: string }>(
      // Ordered by the columns (c.), not the text output names: as text, '9' sorts after '10'.
      `SELECT c.xid::text AS xid, c.id::text AS id FROM ${this.s}.polling_changes c
       ORDER BY c.xid DESC, c.id DESC OFFSET $1 LIMIT 1`,
      [maxRows],
    );
    return rows[0] ?? null;
  }

  /**
   * Deletes one chunk: of the first `limit` rows after `after` and up to `bound` (in primary-key
   * order), the leading ones that are past retention: older than `maxAgeMs`, or at or before
   * `overflow`. Each chunk is a short transaction of its own, so an interrupted prune loses at most
   * one chunk. `last` is the last row deleted (the next chunk starts after it); `scanned` above
   * `deleted` means a row within retention ended the chunk.
   */
  async pruneChunk(
    client: Client,
    chunk: {
      after: ChangeLogCursor;
      bound: ChangeLogCursor;
      overflow: ChangeLogCursor | null;
      maxAgeMs: number | null;
      limit: number;
    },
  ): Promise<{ scanned: number; deleted: number; last: ChangeLogCursor | null }> {
    const overflow = chunk.overflow ?? CHANGE_LOG_START;
    const { rows } = await client.query<{
      scanned: number;
      deleted: number;
      xid: string | null;
      id: string | null;
    }>(
      // aged: this row and every row before it in the chunk are older than maxAgeMs (rows are in
      // xid order, their times are not), so the deleted rows are always a prefix of the chunk.
      `WITH chunk AS (
         SELECT xid, id, bool_and(coalesce(
             changed_at < now() - $6::bigint * interval '1 millisecond', false))
           OVER (ORDER BY xid, id) AS aged
         FROM (
           SELECT xid, id, changed_at FROM ${this.s}.polling_changes
           WHERE (xid, id) > ($1::text::xid8, $2::bigint) AND (xid, id) <= ($3::text::xid8, $4::bigint)
           ORDER BY xid, id LIMIT $5
         ) c
       ), gone AS (
         DELETE FROM ${this.s}.polling_changes p USING chunk
         WHERE p.xid = chunk.xid AND p.id = chunk.id
           AND (chunk.aged OR (chunk.xid, chunk.id) <= ($7::text::xid8, $8::bigint))
         RETURNING p.xid, p.id
       ), last AS (
         SELECT xid, id FROM gone ORDER BY xid DESC, id DESC LIMIT 1
       ), mark AS (
         -- In the chunk's own transaction: no row goes without the mark moving past it.
         INSERT INTO ${this.s}.polling_reader_state AS s
           (index_key, leader, generation, position, read_xid, read_id, updated_at)
         SELECT $9, 'pruner', '', 0, xid, id, now() FROM last
         ON CONFLICT (index_key) DO UPDATE
           SET read_xid = EXCLUDED.read_xid, read_id = EXCLUDED.read_id, updated_at = now()
           WHERE (EXCLUDED.read_xid, EXCLUDED.read_id) > (s.read_xid, s.read_id)
       )
       SELECT (SELECT count(*) FROM chunk)::int AS scanned,
         (SELECT count(*) FROM gone)::int AS deleted,
         (SELECT xid::text FROM last) AS xid, (SELECT id::text FROM last) AS id`,
      [
        chunk.after.xid,
        chunk.after.id,
        chunk.bound.xid,
        chunk.bound.id,
        chunk.limit,
        chunk.maxAgeMs,
        overflow.xid,
        overflow.id,
        PRUNED_MARK,
      ],
    );
    const [r] = rows;
    const last = r.xid === null || r.id === null ? null : { xid: r.xid, id: r.id };
    return { scanned: r.scanned, deleted: r.deleted, last };
  }
}
