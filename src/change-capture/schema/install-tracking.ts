import type { Client } from 'pg';
import { installChangeLogSql } from './change-log.sql';
import { PollingConfigError, type ResolvedTable } from '../../resolve-options';

/** Serialises concurrent installs (several instances starting at once). */
const INSTALL_LOCK_KEY = 'nestjs-polling:install';

function qualified(table: string): string {
  return table
    .split('.')
    .map((part) => `"${part}"`)
    .join('.');
}

/**
 * Installs the change log and starts tracking the tables; used by the module and migrations.
 * `lockTimeoutMs` must be below the connection's client-side query timeout: a client that gives
 * up does not end the server's wait, and trigger DDL waiting for a table lock (behind a long or
 * prepared transaction that wrote it) queues every later writer of that table behind it.
 */
export async function installTracking(
  client: Client,
  schema: string,
  tables: ResolvedTable[],
  lockTimeoutMs: number,
): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [INSTALL_LOCK_KEY]);
    await client.query(`SET LOCAL client_min_messages = warning`);
    await client.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.floor(lockTimeoutMs))}`);
    await client.query(installChangeLogSql(schema));
    for (const t of tables) {
      await client
        .query(`SELECT "${schema}".polling_track($1::regclass, $2, $3, $4)`, [
          qualified(t.table),
          t.key,
          t.partition,
          t.feed,
        ])
        .catch((error: Error) => {
          throw new PollingConfigError(`cannot track "${t.table}": ${error.message}`);
        });
    }
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

export { qualified as qualifiedTableName };
