import { DataSource } from 'typeorm';
import { pollingMigrations } from './index';

/** Used by `npm run migration:run` / `migration:revert`; apps normally use their own DataSource. */
export default new DataSource({
  type: 'postgres',
  url: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
  migrations: pollingMigrations,
});
