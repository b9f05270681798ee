// Installs the change log only. Start tracking a table from your own migration with
// `trackTable(queryRunner, 'messages', { key: 'id', partition: 'channel' })`.
import {
  installChangeLogSql,
  uninstallChangeLogSql,
} from '../change-capture/schema/change-log.sql';
import { defaultPollingSchema } from './polling-schema';
import type { SqlRunner } from './sql-runner';

export class PollingChangeLog1732350000000 {
  name = 'PollingChangeLog1732350000000';

  /** TypeORM constructs it without arguments; pollingMigrationsFor(schema) binds a schema. */
  constructor(protected readonly schema: string = defaultPollingSchema()) {}

  async up(queryRunner: SqlRunner): Promise<void> {
    await queryRunner.query(installChangeLogSql(this.schema));
  }

  async down(queryRunner: SqlRunner): Promise<void> {
    await queryRunner.query(uninstallChangeLogSql(this.schema));
  }
}
