import { Client } from 'pg';
import { adminUrl, createTestDatabase } from './test-database';

async function databaseExists(name: string): Promise<boolean> {
  const admin = new Client({ connectionString: adminUrl() });
  await admin.connect();
  try {
    const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    return rowCount === 1;
  } finally {
    await admin.end();
  }
}

describe('createTestDatabase', () => {
  it('creates a usable database and drops it, even with a connection still open', async () => {
    const db = await createTestDatabase();
    expect(db.name).toMatch(/^polling_test_\d+_[0-9a-f]{8}$/);
    expect(await databaseExists(db.name)).toBe(true);

    // Left open on purpose: drop() must terminate it.
    const viaConfig = new Client(db.config);
    viaConfig.on('error', () => {});
    await viaConfig.connect();
    const viaUrl = new Client({ connectionString: db.url });
    await viaUrl.connect();
    try {
      for (const client of [viaConfig, viaUrl]) {
        const { rows } = await client.query('SELECT current_database() AS name');
        expect(rows[0].name).toBe(db.name);
      }
    } finally {
      await viaUrl.end();
    }

    await db.drop();
    expect(await databaseExists(db.name)).toBe(false);
    await expect(db.drop()).resolves.toBeUndefined();
    await viaConfig.end().catch(() => {});
  });

  it('gives every call its own database', async () => {
    const [a, b] = await Promise.all([createTestDatabase(), createTestDatabase()]);
    try {
      expect(a.name).not.toBe(b.name);
    } finally {
      await Promise.all([a.drop(), b.drop()]);
    }
    expect(await databaseExists(a.name)).toBe(false);
    expect(await databaseExists(b.name)).toBe(false);
  });
});
