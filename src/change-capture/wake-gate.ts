import type { Client } from 'pg';
import { assertSchemaName } from './schema/schema-name';

/** The gate is a bigint bitmask: slots 0..62 (bit 63 is the sign). */
const SLOTS = 63;
/** Key2 of the transaction lock that serialises gate updates (outside the slot range). */
const UPDATE_LOCK = 1000;
/** How often a reader without NOTIFY reads the log while idle (one cheap indexed query). */
export const IDLE_POLL_MS = 50;

/**
 * One reader's bit in the schema's wake gate (the `polling_wake_gate` sequence, a bitmask). The
 * trigger NOTIFYs while any bit is set, so readers sharing a schema (several in-memory instances,
 * a second index with another keyPrefix) arm and disarm their own bit and never close each
 * other's gate. A reader owns its slot through a session advisory lock; bits of slots nobody
 * holds (a reader that died armed) are cleared whenever a reader arms.
 *
 * `notifies` is false when the reader must poll instead of sleeping on NOTIFY: on a server that
 * allows prepared transactions (the trigger never NOTIFYs there, because PREPARE TRANSACTION
 * refuses a transaction that did), or when all slots are taken.
 */
export class WakeGate {
  private constructor(
    private readonly sql: GateSql,
    readonly notifies: boolean,
    private readonly bit: bigint,
  ) {}

  /** Takes a free slot on the reader's connection and leaves its bit cleared. */
  static async open(client: Client, schema: string): Promise<WakeGate> {
    const sql = new GateSql(schema);
    const { rows } = await client.query<{ mpt: string }>(
      "SELECT current_setting('max_prepared_transactions') AS mpt",
    );
    if (rows[0].mpt !== '0') return new WakeGate(sql, false, 0n);
    for (let slot = 0; slot < SLOTS; slot++) {
      const taken = await client.query<{ ok: boolean }>(
        'SELECT pg_try_advisory_lock(hashtext($1), $2) AS ok',
        [sql.lockName, slot],
      );
      if (!taken.rows[0].ok) continue;
      const gate = new WakeGate(sql, true, 1n << BigInt(slot));
      await gate.disarm(client); // a reader that held this slot before may have died armed
      return gate;
    }
    return new WakeGate(sql, false, 0n);
  }

  /**
   * Sets this reader's bit (writers start to NOTIFY) and returns a fresh xid taken *after*: every
   * writer that still saw the bit cleared has a lower xid, so once the horizon passes this xid, a
   * read has seen all of their rows.
   */
  async arm(client: Client): Promise<bigint> {
    await client.query(this.sql.arm, [this.sql.lockName, this.bit.toString()]);
    const { rows } = await client.query('SELECT pg_current_xact_id()::text AS xid');
    return BigInt(rows[0].xid);
  }

  /**
   * Clears this reader's bit (it is awake and will read anyway, so writers may skip NOTIFY) and the
   * bits of readers that are gone.
   */
  async disarm(client: Client): Promise<void> {
    await client.query(this.sql.disarm, [this.sql.lockName, this.bit.toString()]);
  }
}

/** The two gate updates; each is one autocommit statement under the update lock. */
class GateSql {
  readonly lockName: string;
  readonly arm: string;
  readonly disarm: string;

  constructor(schema: string) {
    const gate = `'"${assertSchemaName(schema)}".polling_wake_gate'::regclass`;
    this.lockName = `nestjs-polling:wake-gate:${schema}`;
    // setval is not transactional: the read-modify-write is atomic only under the lock, which the
    // MATERIALIZED CTE takes before the outer query reads the gate.
    const update = (mask: string) => `
      WITH locked AS MATERIALIZED (SELECT pg_advisory_xact_lock(hashtext($1), ${UPDATE_LOCK}))
      SELECT setval(${gate}, ${mask}, true) FROM locked`;
    const current = `coalesce(pg_sequence_last_value(${gate}), 0)`;
    // Slots whose session lock is held in this database: the readers alive on this schema.
    const live = `(SELECT coalesce(bit_or(1::bigint << l.objid::int), 0) FROM pg_locks l
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
          AND l.classid = hashtext($1)::oid AND l.objid < ${SLOTS}
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))`;
    this.arm = update(`(${current} & ${live}) | $2::bigint`);
    // Both clear the bits of slots nobody holds (a reader that stopped or died armed): left set,
    // they make every writer NOTIFY for a reader that is gone, and each NOTIFY cuts short the
    // pauses of the readers that are still there.
    this.disarm = update(`(${current} & ${live}) & ~$2::bigint`);
  }
}
