import { Client } from 'pg';
import { ChangeLogQueries } from '../../src/change-capture/change-log.queries';
import { installChangeLogSql } from '../../src/change-capture/schema/change-log.sql';
import { createTestDatabase, type TestDatabase } from '../support/test-database';

const LOG_ROWS = 20_000;

/**
 * The reader reads every few milliseconds while changes flow, so one read must cost what the new
 * rows cost, not what the retained log costs, nor a fresh plan (issue 16: the reader's CPU
 * competed with busy writers). Its held-back test was an EXISTS over the rest of the log, which the planner ran as a
 * scan of the whole table while the table had no statistics (a young log, after a TRUNCATE, with
 * autovacuum not yet round): every read then touched every retained row.
 */
describe('a change-log read touches the new rows, not the retained log', () => {
  let db: TestDatabase;
  let reader: Client;
  let writer: Client;
  let stalled: Client;
  const queries = new ChangeLogQueries('public');

  beforeAll(async () => {
    db = await createTestDatabase();
    reader = new Client(db.config);
    writer = new Client(db.config);
    stalled = new Client(db.config);
    await Promise.all([reader.connect(), writer.connect(), stalled.connect()]);
    await writer.query('SET client_min_messages = warning');
    await writer.query(installChangeLogSql('public'));
    // No statistics for the planner, as on a log that has just been created or truncated.
    await writer.query('ALTER TABLE polling_changes SET (autovacuum_enabled = off)');
    await writer.query('CREATE TABLE items (id bigserial PRIMARY KEY, run int NOT NULL)');
    await writer.query(`SELECT polling_track('items', 'id', 'run')`);
    await writer.query(`INSERT INTO items (run) SELECT 1 FROM generate_series(1, ${LOG_ROWS})`);
  });

  afterAll(async () => {
    await Promise.all([reader, writer, stalled].map((c) => c?.end()));
    await db?.drop();
  });

  /** Rows read by sequential scans of polling_changes during `reads` (this transaction's count). */
  async function scannedRows(reads: () => Promise<void>): Promise<number> {
    await reader.query('BEGIN');
    try {
      await reads();
      const { rows } = await reader.query(
        `SELECT coalesce(seq_tup_read, 0)::int AS n FROM pg_stat_xact_user_tables
          WHERE relname = 'polling_changes'`,
      );
      return rows[0].n;
    } finally {
      await reader.query('ROLLBACK');
    }
  }

  it('reads at the end of a large log without scanning it', async () => {
    const end = await queries.committedEnd(reader);
    let heldBack = true;
    const scanned = await scannedRows(async () => {
      for (let i = 0; i < 3; i++) {
        const read = await queries.read(reader, end, 5000);
        expect(read.rows).toEqual([]);
        heldBack = read.heldBack;
      }
    });
    expect(heldBack).toBe(false);
    expect(scanned).toBeLessThan(LOG_ROWS);
  });

  it('plans the read once per connection, not at every read', async () => {
    const end = await queries.committedEnd(reader);
    for (let i = 0; i < 8; i++) await queries.read(reader, end, 5000);
    const { rows } = await reader.query(
      `SELECT (generic_plans + custom_plans)::int AS runs FROM pg_prepared_statements
        WHERE statement LIKE '%polling_changes%'`,
    );
    expect(rows).toHaveLength(1);
    expect(rows[0].runs).toBeGreaterThanOrEqual(8);
  });

  it('still reports changes held back behind an open transaction, and reads them once it ends', async () => {
    const end = await queries.committedEnd(reader);
    await stalled.query('BEGIN');
    await stalled.query('INSERT INTO items (run) VALUES (2)');
    await writer.query('INSERT INTO items (run) VALUES (3)');

    const behind = await queries.read(reader, end, 5000);
    expect(behind.rows).toEqual([]);
    expect(behind.heldBack).toBe(true);

    await stalled.query('COMMIT');
    const after = await queries.read(reader, end, 5000);
    expect(after.rows.map((r) => r.feed)).toEqual(['items:2', 'items:3']);
    expect(after.heldBack).toBe(false);
  });
});
