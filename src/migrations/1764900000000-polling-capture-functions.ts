// Upgrades an existing change log: per-reader wake gate (a bitmask), capture functions that are
// SECURITY DEFINER (writers need no grants on the library's objects), never NOTIFY on a server
// that allows PREPARE TRANSACTION, and are named per feed without collisions. Every tracked table
// is re-tracked so its triggers call a regenerated function.
import { installChangeLogSql, retrackAllSql } from '../change-capture/schema/change-log.sql';
import { defaultPollingSchema } from './polling-schema';
import type { SqlRunner } from './sql-runner';

export class PollingCaptureFunctions1764900000000 {
  name = 'PollingCaptureFunctions1764900000000';

  /** TypeORM constructs it without arguments; pollingMigrationsFor(schema) binds a schema. */
  constructor(protected readonly schema: string = defaultPollingSchema()) {}

  async up(queryRunner: SqlRunner): Promise<void> {
    await queryRunner.query(installChangeLogSql(this.schema));
    await queryRunner.query(retrackAllSql(this.schema));
  }

  /** Nothing to undo that the first migration's down does not: the new SQL serves old data. */
  async down(): Promise<void> {}
}
