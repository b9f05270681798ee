// Installs the change log only. Start tracking a table from your own migration, e.g.
// `await queryRunner.query(\`SELECT polling_track('messages', 'id', 'channel')\`)`.
import type { MigrationInterface, QueryRunner } from 'typeorm';
import {
  installChangeLogSql,
  uninstallChangeLogSql,
} from '../change-capture/schema/change-log.sql';
import { pollingSchema as schema } from './polling-schema';

export class PollingChangeLog1732350000000 implements MigrationInterface {
  name = 'PollingChangeLog1732350000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(installChangeLogSql(schema()));
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(uninstallChangeLogSql(schema()));
  }
}
