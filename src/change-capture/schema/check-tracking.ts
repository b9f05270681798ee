import type { Client } from 'pg';
import { PollingConfigError, type ResolvedTable } from '../../resolve-options';
import { qualifiedTableName } from './install-tracking';
import { captureTriggerName } from './schema-name';

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
        `(${schema === 'public' ? 'pollingMigrations' : `pollingMigrationsFor('${schema}')`} ` +
        'in your DataSource) or set installSchema: true',
    );
  }
  const { rows: fnRows } = await client.query('SELECT to_regprocedure($1) AS f', [
    `"${schema}".polling_capture_function(text)`,
  ]);
  if (fnRows[0].f === null) {
    throw new PollingConfigError(
      `the change log in schema "${schema}" was installed by an older nestjs-polling: run the ` +
        'migrations (npm run migration:run; pollingMigrations re-tracks every tracked table) or ' +
        'set installSchema: true',
    );
  }
  const triggerNames = (['insert', 'update', 'delete'] as const).map((op) =>
    captureTriggerName(schema, op),
  );
  for (const t of tables) {
    const { rows } = await client.query(
      `SELECT c.oid::regclass::text AS name,
         EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = c.oid AND attname = $2 AND attnum > 0 AND NOT attisdropped) AS has_key,
         ($3::text IS NULL OR EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = c.oid AND attname = $3 AND attnum > 0 AND NOT attisdropped)) AS has_partition,
         -- this change log's triggers (another schema's change log may track the table too)
         (SELECT count(*) FROM pg_trigger tg JOIN pg_proc p ON p.oid = tg.tgfoid
            WHERE tg.tgrelid = c.oid AND tg.tgname LIKE 'polling\\_capture\\_%'
              AND p.pronamespace = $4::regnamespace)::int AS triggers,
         -- the three triggers must call this feed's own, current (SECURITY DEFINER) function
         (SELECT count(*) FROM pg_trigger tg JOIN pg_proc p ON p.oid = tg.tgfoid
            WHERE tg.tgrelid = c.oid AND tg.tgname = ANY ($5::text[])
              AND p.pronamespace = $4::regnamespace AND p.prosecdef
              AND p.proname = "${schema}".polling_capture_function(tt.feed))::int AS own_triggers,
         -- a disabled trigger (ALTER TABLE ... DISABLE TRIGGER, left over from a bulk load)
         (SELECT count(*) FROM pg_trigger tg JOIN pg_proc p ON p.oid = tg.tgfoid
            WHERE tg.tgrelid = c.oid AND tg.tgenabled = 'D' AND tg.tgname LIKE 'polling\\_capture\\_%'
              AND p.pronamespace = $4::regnamespace)::int AS disabled,
         (SELECT string_agg(DISTINCT tg.tgfoid::regprocedure::text, ', ') FROM pg_trigger tg
            JOIN pg_proc p ON p.oid = tg.tgfoid
            WHERE tg.tgrelid = c.oid AND tg.tgname LIKE 'polling\\_capture\\_%'
              AND p.pronamespace = $4::regnamespace) AS called,
         tt.feed, tt.key_column, tt.partition_column
       FROM pg_class c
       LEFT JOIN "${schema}".polling_tracked_tables tt ON tt.table_name = c.oid
       WHERE c.oid = to_regclass($1)`,
      [qualifiedTableName(t.table), t.key, t.partition, `"${schema}"`, triggerNames],
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
      row.own_triggers === 3 &&
      row.disabled === 0 &&
      row.feed === t.feed &&
      row.key_column === t.key &&
      row.partition_column === t.partition;
    if (!matches) {
      // e.g. a trigger left calling another feed's function (names cut at 63 bytes before v2)
      const calls =
        row.triggers > 0 && row.own_triggers < 3
          ? `; its triggers call ${row.called}`
          : row.disabled > 0
            ? `; ${row.disabled} of its capture triggers are disabled`
            : '';
      throw new PollingConfigError(
        `table "${t.table}" is not tracked as configured (feed ${t.feed}, key ${t.key}, ` +
          `partition ${t.partition ?? 'none'}${calls}): run SELECT "${schema}".polling_track('${t.table}', ` +
          `'${t.key}', ${t.partition ? `'${t.partition}'` : 'NULL'}, '${t.feed}') in a migration, ` +
          'or set installSchema: true',
      );
    }
  }
}
