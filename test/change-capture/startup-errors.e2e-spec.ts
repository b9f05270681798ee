import { Client } from 'pg';
import { installChangeLogSql } from '../../src';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { freePort } from '../support/redis-server';
import { createItemsTable, itemsOptions, startPollingApp } from '../support/polling-app';

describe('bad configuration fails start-up with a clear message', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
  });

  afterAll(async () => {
    await db?.drop();
  });

  it('names a tracked table that does not exist', async () => {
    await expect(
      startPollingApp(itemsOptions(db, { tables: [{ table: 'nope' }] })),
    ).rejects.toThrow(/cannot track "nope": relation "nope" does not exist/);
  });

  it('names a partition column that does not exist', async () => {
    await expect(
      startPollingApp(itemsOptions(db, { tables: [{ table: 'items', partition: 'colour' }] })),
    ).rejects.toThrow(/has no partition column "colour"/);
  });

  it('tells how to track a table the migrations did not track', async () => {
    const client = new Client(db.config);
    await client.connect();
    await client.query(installChangeLogSql('public'));
    await client.query('CREATE TABLE untracked (id int PRIMARY KEY)');
    await client.end();
    await expect(
      startPollingApp(itemsOptions(db, { installSchema: false, tables: [{ table: 'untracked' }] })),
    ).rejects.toThrow(/"untracked" is not tracked as configured .*polling_track\('untracked'/);
  });

  it.each([
    [{ maxAgeMs: -1 }, /retention.maxAgeMs must be an integer/],
    [{ maxRows: 1.5 }, /retention.maxRows must be an integer/],
    [{}, /retention needs maxAgeMs and\/or maxRows/],
  ])('rejects retention %j', async (retention, message) => {
    await expect(startPollingApp(itemsOptions(db, { retention }))).rejects.toThrow(message);
  });

  it('rejects an empty table list and an unsafe table name', async () => {
    await expect(startPollingApp(itemsOptions(db, { tables: [] }))).rejects.toThrow(
      /tables must name at least one table/,
    );
    await expect(
      startPollingApp(itemsOptions(db, { tables: [{ table: 'items;DROP TABLE items' }] })),
    ).rejects.toThrow(/not a plain \[schema.\]table name/);
  });

  it('says which Postgres it could not reach', async () => {
    const port = await freePort();
    await expect(
      startPollingApp(
        itemsOptions(db, { postgres: { url: `postgres://postgres@127.0.0.1:${port}/x` } }),
      ),
    ).rejects.toThrow(new RegExp(`cannot connect to Postgres at 127.0.0.1:${port}/x`));
  });

  it('fails instead of falling back to memory when Redis is unreachable', async () => {
    const port = await freePort();
    await expect(
      startPollingApp(itemsOptions(db, { redis: { url: `redis://127.0.0.1:${port}` } })),
    ).rejects.toThrow(/cannot connect to Redis/);
  });
});
