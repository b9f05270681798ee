import type { Provider } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { trackTable } from '../../../src';

/** The scratch stream tables: one tracked table, one feed per stream (its `stream` column). */
export const SCRATCH_APPENDS = 'ds_scratch_appends';
export const SCRATCH_STREAMS = 'ds_scratch_streams';

/** Injection token: resolved once the scratch tables exist and are tracked. */
export const SCRATCH_TABLES = Symbol('ScratchTables');

/**
 * Creates and tracks the scratch tables when the app starts (test writes only). A provider
 * factory: it runs before the change reader checks its tracked tables.
 */
export const scratchTablesProvider: Provider = {
  provide: SCRATCH_TABLES,
  inject: [DataSource],
  useFactory: async (db: DataSource) => {
    await db.query(`
      CREATE TABLE IF NOT EXISTS ${SCRATCH_STREAMS} (
        name text PRIMARY KEY,
        content_type text NOT NULL
      );
      CREATE TABLE IF NOT EXISTS ${SCRATCH_APPENDS} (
        id bigserial PRIMARY KEY,
        stream text NOT NULL,
        body bytea NOT NULL
      );
      CREATE INDEX IF NOT EXISTS ${SCRATCH_APPENDS}_stream ON ${SCRATCH_APPENDS} (stream, id);
    `);
    await trackTable(db, SCRATCH_APPENDS, { key: 'id', partition: 'stream' });
    return true;
  },
};
