import { Logger } from '@nestjs/common';
import { createHash } from 'node:crypto';
import type { Client } from 'pg';
import type { ResolvedOptions } from '../resolve-options';
import { postgresClientConfig } from './postgres-config';
import { ReaderConnection } from './reader-connection';
import { WakeSignal } from './wake-signal';

const logger = new Logger('ChangeReader');
/** SQLSTATE of "permission denied". */
const INSUFFICIENT_PRIVILEGE = '42501';

/**
 * A short, stable name for one change log: its cluster (`system_identifier`, unique per initdb),
 * database (oid) and schema, hashed. Indexes of different change logs sharing one Redis and one
 * key prefix get different keys from it, so they can never read or move each other's head.
 */
export async function readChangeLogIdentity(client: Client, schema: string): Promise<string> {
  const { rows } = await client.query<{ oid: string; name: string }>(
    'SELECT oid::text AS oid, datname AS name FROM pg_database WHERE datname = current_database()',
  );
  const [database] = rows;
  let cluster: string;
  try {
    const control = await client.query<{ id: string }>(
      'SELECT system_identifier::text AS id FROM pg_control_system()',
    );
    cluster = control.rows[0].id;
  } catch (error) {
    // Only a missing privilege falls back: after any other failure (a dropped connection, a
    // timeout) the instance would name its index unlike its peers and lead an index of its own.
    if ((error as { code?: string }).code !== INSUFFICIENT_PRIVILEGE) throw error;
    // Readable by everyone by default; a server that revokes it still gets distinct keys per
    // database name, only not per cluster for equal names.
    logger.warn(
      `pg_control_system() is not readable (${(error as Error).message}); the index is named ` +
        'after the database name, so set keyPrefix apart for equal names on other clusters',
    );
    cluster = `name:${database.name}`;
  }
  return createHash('sha256')
    .update(`${cluster}/${database.oid}/${schema}`)
    .digest('hex')
    .slice(0, 12);
}

/** Reads the identity of the configured change log over a short-lived connection of its own. */
export async function changeLogIdentity(options: ResolvedOptions): Promise<string> {
  const config = postgresClientConfig(options.postgres);
  const { queryTimeoutMs } = options.reader;
  const connection = await ReaderConnection.open(config, queryTimeoutMs, new WakeSignal());
  try {
    return await readChangeLogIdentity(connection.client, options.schema);
  } finally {
    connection.close();
  }
}
