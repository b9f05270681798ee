import { qualifiedTableName } from '../change-capture/schema/install-tracking';
import { assertSchemaName } from '../sql-identifier';
import type { SqlRunner } from './sql-runner';

export interface TrackTableOptions {
  /** Column that identifies a row; its text form is the change's resource id. */
  key: string;
  /** Column whose value splits the table into one feed per value (`messages:general`). */
  partition?: string;
  /** Feed name (prefix). Default: the table name without schema. */
  feed?: string;
  /** Schema of the change log: the module's `schema` option. Default `public`. */
  schema?: string;
}

/**
 * Starts capturing a table's writes (calls polling_track). Idempotent: tracking again with other
 * options replaces the triggers. Use from a migration's `up`, after pollingMigrations.
 */
export async function trackTable(
  queryRunner: SqlRunner,
  table: string,
  options: TrackTableOptions,
): Promise<void> {
  const schema = assertSchemaName(options.schema ?? 'public');
  await queryRunner.query(`SELECT "${schema}".polling_track($1::regclass, $2, $3, $4)`, [
    qualifiedTableName(table),
    options.key,
    options.partition ?? null,
    options.feed ?? null,
  ]);
}

/** Stops capturing a table's writes (calls polling_untrack); the migration's `down`. */
export async function untrackTable(
  queryRunner: SqlRunner,
  table: string,
  options: { schema?: string } = {},
): Promise<void> {
  const schema = assertSchemaName(options.schema ?? 'public');
  await queryRunner.query(`SELECT "${schema}".polling_untrack($1::regclass)`, [
    qualifiedTableName(table),
  ]);
}
