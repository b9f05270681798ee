import type { ClientConfig } from 'pg';
import type { PostgresConnection } from '../polling-options.interface';

/** The connection settings for the module's own connections, from whichever form was given. */
export function postgresClientConfig(connection: PostgresConnection): ClientConfig {
  if ('url' in connection) return { connectionString: connection.url };
  if ('config' in connection) return { ...(connection.config as ClientConfig) };
  // TypeORM's postgres options use `username`; node-postgres calls it `user`.
  const o = connection.dataSource.options as unknown as Record<string, unknown>;
  if (o.type !== 'postgres') {
    throw new Error(
      `nestjs-polling: the DataSource must be of type "postgres", not "${String(o.type)}"`,
    );
  }
  return {
    connectionString: o.url as string | undefined,
    host: o.host as string | undefined,
    port: o.port as number | undefined,
    user: o.username as string | undefined,
    password: o.password as ClientConfig['password'],
    database: o.database as string | undefined,
    ssl: o.ssl as ClientConfig['ssl'],
  };
}

/** host:port/database for error messages; never the password. */
export function describePostgres(config: ClientConfig): string {
  if (config.connectionString) {
    try {
      const url = new URL(config.connectionString);
      return `${url.hostname}:${url.port || 5432}${url.pathname}`;
    } catch {
      return 'the configured connection string';
    }
  }
  return `${config.host ?? 'localhost'}:${config.port ?? 5432}/${config.database ?? ''}`;
}
