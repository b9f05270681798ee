import type { Client } from 'pg';
import { PollingConfigError, type ResolvedTable } from '../../resolve-options';
import { qualifiedTableName } from './install-tracking';

/**
 * Fails start-up with a message that says what to do when the database does not match the
 * configuration: a missing table or column, a table nobody started tracking, or a mismatch.
 */
export async function checkTracking(client: Client, schema: string, tables: ResolvedTable[]) {
  const { rows: logRows } = await client.query('SELECT to_regclass($1) AS t', [
    `"${schema}".polling_changes`,
  ]);
  if (logRows[0].t === null) {
    throw new PollingConfigError(
      `the change log "${schema}".polling_changes does not exist: run the migrations ` +
        '(npm run migration:run) or set installSchema: true',
    );
  }
  for (const t of tables) {
    const { rows } = await client.query(
      `SELECT c.oid::regclass::text AS name,
         EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = c.oid AND attname = $2 AND attnum > 0 AND NOT attisdropped) AS has_key,
         ($3::text IS NULL OR EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = c.oid AND attname = $3 AND attnum > 0 AND NOT attisdropped)) AS has_partition,
         (SELECT count(*) FROM pg_trigger WHERE tgrelid = c.oid AND tgname LIKE 'polling_capture_%')::int AS triggers,
         tt.feed, tt.key_column, tt.partition_column
       FROM pg_class c
       LEFT JOIN "${schema}".polling_tracked_tables tt ON tt.table_name = c.oid
       WHERE c.oid = to_regclass($1)`,
      [qualifiedTableName(t.table), t.key, t.partition],
    );
    const row = rows[0];
    if (!row) throw new PollingConfigError(`tracked table "${t.table}" does not exist`);
    if (!row.has_key)
      throw new PollingConfigError(`table "${t.table}" has no key column "${t.key}"`);
    if (!row.has_partition) {
      throw new PollingConfigError(`table "${t.table}" has no partition column "${t.partition}"`);
    }
    const matches =
      row.triggers === 3 &&
      row.feed === t.feed &&
      row.key_column === t.key &&
      row.partition_column === t.partition;
    if (!matches) {
      throw new PollingConfigError(
        `table "${t.table}" is not tracked as configured (feed ${t.feed}, key ${t.key}, ` +
          `partition ${t.partition ?? 'none'}): run SELECT "${schema}".polling_track('${t.table}', ` +
          `'${t.key}', ${t.partition ? `'${t.partition}'` : 'NULL'}, '${t.feed}') in a migration, ` +
          'or set installSchema: true',
      );
    }
  }
}
