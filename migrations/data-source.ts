import { exampleDataSource } from '../example/database.provider';

/**
 * Used by `npm run migration:run` / `migration:revert`: the module's change log and the example
 * app's tables. Apps normally pass `pollingMigrations` to their own DataSource.
 */
export default exampleDataSource(
  process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
);
