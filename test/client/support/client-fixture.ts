import { Client } from 'pg';
import type { PollingModuleOptions } from '../../../src';
import { startItemsApp, type ItemsApp } from '../../fixtures/items-app';
import { createItemsTable } from '../../support/polling-app';
import { createTestDatabase, type TestDatabase } from '../../support/test-database';

/** A database with the `items` table, a writer connection, and the fixture app on it. */
export interface ClientFixture {
  db: TestDatabase;
  writer: Client;
  items: ItemsApp;
  /** Starts another app on the same database (`items` stays as it is; assign it if you like). */
  startApp(options?: Partial<PollingModuleOptions>): Promise<ItemsApp>;
  /** Inserts a row into `run`; returns its id. */
  insert(run: number, body?: string): Promise<string>;
  /** The feed head of a route (a GET without since). */
  head(path: string, base?: string): Promise<string>;
  close(): Promise<void>;
}

export async function startClientFixture(
  options: Partial<PollingModuleOptions> = {},
): Promise<ClientFixture> {
  const db = await createTestDatabase();
  await createItemsTable(db);
  const writer = new Client(db.config);
  await writer.connect();
  const fixture: ClientFixture = {
    db,
    writer,
    items: await startItemsApp(db.url, options),
    startApp: (more = options) => startItemsApp(db.url, more),
    async insert(run, body = 'row') {
      const { rows } = await writer.query<{ id: string }>(
        'INSERT INTO items (run, body) VALUES ($1, $2) RETURNING id',
        [run, body],
      );
      return rows[0].id;
    },
    async head(path, base = fixture.items.url) {
      const res = await fetch(`${base}${path}`);
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`head of ${path}: ${res.status}`);
      return res.headers.get('poll-cursor')!;
    },
    async close() {
      await closeApp(fixture.items);
      await writer.end();
      await db.drop();
    },
  };
  return fixture;
}

/**
 * Closes an app at once. After an aborted fetch, undici keeps a spare connection open that Node's
 * server.close() would wait seconds for; drop every connection first.
 */
export async function closeApp(items: ItemsApp): Promise<void> {
  items.app.getHttpServer().closeAllConnections();
  await items.close();
}

/** Changes bodies of the fixture's feed routes. */
export interface ChangesBody {
  changes: {
    id: string;
    op: 'upsert' | 'delete';
    row?: { id: string; run: number; body: string };
  }[];
  cursor: string;
}
