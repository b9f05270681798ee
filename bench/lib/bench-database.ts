import { randomBytes } from 'node:crypto';
import { Client } from 'pg';

export interface BenchDatabase {
  url: string;
  drop(): Promise<void>;
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

async function asAdmin(serverUrl: string, sql: string): Promise<void> {
  const admin = new Client({ connectionString: withDatabase(serverUrl, 'postgres') });
  await admin.connect();
  try {
    await admin.query(sql);
  } finally {
    await admin.end();
  }
}

/** A throwaway database per bench, so nothing it does touches real data. */
export async function createBenchDatabase(serverUrl: string): Promise<BenchDatabase> {
  const name = `polling_bench_${process.pid}_${randomBytes(4).toString('hex')}`;
  await asAdmin(serverUrl, `CREATE DATABASE "${name}" TEMPLATE template0`);
  return {
    url: withDatabase(serverUrl, name),
    drop: () => asAdmin(serverUrl, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`),
  };
}
