import { PollingChangeLog1732350000000 } from './1732350000000-polling-change-log';
import { PollingCaptureFunctions1764900000000 } from './1764900000000-polling-capture-functions';
import { assertSchemaName } from '../sql-identifier';

export { PollingChangeLog1732350000000, PollingCaptureFunctions1764900000000 };
export { trackTable, untrackTable, type TrackTableOptions } from './track-table';
export type { SqlRunner } from './sql-runner';

/** Pass to your DataSource: `migrations: [...pollingMigrations, ...yours]` (schema `public`). */
export const pollingMigrations = [
  PollingChangeLog1732350000000,
  PollingCaptureFunctions1764900000000,
];

/**
 * The same migrations installing into `schema`; pass the module's `schema` option so both agree:
 * `migrations: [...pollingMigrationsFor('polling'), ...yours]`. Names (and so the rows in
 * TypeORM's migrations table) are those of `pollingMigrations`.
 */
export function pollingMigrationsFor(schema: string): (typeof pollingMigrations)[number][] {
  assertSchemaName(schema);
  return [
    class extends PollingChangeLog1732350000000 {
      constructor() {
        super(schema);
      }
    },
    class extends PollingCaptureFunctions1764900000000 {
      constructor() {
        super(schema);
      }
    },
  ];
}
