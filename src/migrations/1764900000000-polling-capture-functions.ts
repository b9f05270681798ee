// Upgrades an existing change log: per-reader wake gate (a bitmask), capture functions that are
// SECURITY DEFINER (writers need no grants on the library's objects), never NOTIFY on a server
// that allows PREPARE TRANSACTION, and are named per feed without collisions. Every tracked table
// is re-tracked so its triggers call a regenerated function.
import type { MigrationInterface, QueryRunner } from 'typeorm';
import { installChangeLogSql, retrackAllSql } from '../change-capture/schema/change-log.sql';
import { pollingSchema } from './polling-schema';

export class PollingCaptureFunctions1764900000000 implements MigrationInterface {
  name = 'PollingCaptureFunctions1764900000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(installChangeLogSql(pollingSchema()));
    await queryRunner.query(retrackAllSql(pollingSchema()));
  }

  /** Nothing to undo that the first migration's down does not: the new SQL serves old data. */
  async down(): Promise<void> {}
}
