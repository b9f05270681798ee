import { assertSchemaName } from '../sql-identifier';

/**
 * Schema of the default `pollingMigrations`: `public`. POLLING_SCHEMA is still read so installs
 * that relied on it keep working; new code passes the schema: `pollingMigrationsFor('polling')`.
 */
export function defaultPollingSchema(): string {
  return assertSchemaName(process.env.POLLING_SCHEMA ?? 'public');
}
