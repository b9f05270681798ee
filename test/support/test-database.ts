import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, ClientConfig } from 'pg';

const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestDatabase {
  /** Generated database name, e.g. `polling_test_1234_a1b2c3d4`. */
  name: string;
  /** Connection URL for the new database (same server and credentials as DATABASE_URL). */
  url: string;
  /** The same connection as explicit pg fields (host, port, user, password, database). */
  config: ClientConfig;
  /** Terminates the database's remaining connections and drops it. Safe to call twice. */
  drop(): Promise<void>;
}

/** Written by scripts/ensure-services.js when it started the embedded PostgreSQL. */
const EMBEDDED_URL_FILE = join(__dirname, '..', '..', '.data', 'test-database-url');

/** The server the tests use: DATABASE_URL, else the embedded one ensure-services started, else the local default. */
export function databaseUrl(): string {
  if (process.env.DATABASE_URL) return process.env.DATABASE_URL;
  try {
    return readFileSync(EMBEDDED_URL_FILE, 'utf8').trim() || DEFAULT_DATABASE_URL;
  } catch {
    return DEFAULT_DATABASE_URL;
  }
}

/** `url` with its database replaced by `database`. */
function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

/** Admin connection URL: the DATABASE_URL server, database `postgres`. */
export function adminUrl(): string {
  return withDatabase(databaseUrl(), 'postgres');
}

function clientConfig(url: string): ClientConfig {
  const u = new URL(url);
  return {
    host: decodeURIComponent(u.hostname) || undefined,
    port: u.port ? Number(u.port) : 5432,
    user: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    database: decodeURIComponent(u.pathname.slice(1)),
  };
}

async function withAdmin<T>(fn: (admin: Client) => Promise<T>): Promise<T> {
  const admin = new Client({ connectionString: adminUrl(), connectionTimeoutMillis: 5000 });
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    await admin.end();
  }
}

/** Creates an empty, uniquely named database for one test file; drop it in `afterAll`. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `polling_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  // template0: CREATE DATABASE from template1 fails while anyone is connected to template1.
  await withAdmin((admin) =>
    admin.query(`CREATE DATABASE ${admin.escapeIdentifier(name)} TEMPLATE template0`),
  );
  const url = withDatabase(databaseUrl(), name);
  let dropped = false;
  return {
    name,
    url,
    config: clientConfig(url),
    async drop() {
      if (dropped) return;
      await withAdmin(async (admin) => {
        await admin.query(
          'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
          [name],
        );
        // WITH (FORCE) (PG 13+) also covers connections opened after the terminate above.
        await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(name)} WITH (FORCE)`);
      });
      dropped = true;
    },
  };
}
