import {
  Module,
  type INestApplication,
  type NestApplicationOptions,
  type Type,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import { Client } from 'pg';
import { ChangeReader, PollingModule, type PollingModuleOptions } from '../../src';
import { CHANGE_INDEX, type ChangeIndex } from '../../src/change-index/change-index.interface';
import { ChangeBus } from '../../src/change-bus/change-bus.service';
import type { TestDatabase } from './test-database';
import { platformAdapter } from './http-platform';

export interface PollingApp {
  app: INestApplication;
  reader: ChangeReader;
  index: ChangeIndex;
  bus: ChangeBus;
  close(): Promise<void>;
}

/** A real Nest app with the polling module, started and listening on an ephemeral port. */
export async function startPollingApp(options: PollingModuleOptions): Promise<PollingApp> {
  @Module({ imports: [PollingModule.forRoot(options)] })
  class TestAppModule {}

  const moduleRef = await Test.createTestingModule({ imports: [TestAppModule] }).compile();
  const settings: NestApplicationOptions = {
    logger: process.env.TEST_LOGS ? undefined : ['error'],
  };
  const adapter = platformAdapter();
  const app = adapter
    ? moduleRef.createNestApplication(adapter, settings)
    : moduleRef.createNestApplication(settings);
  app.enableShutdownHooks();
  try {
    await app.listen(0, '127.0.0.1');
  } catch (error) {
    await app.close().catch(() => undefined);
    throw error;
  }
  const reader = app.get(ChangeReader);
  await reader.whenLive();
  return {
    app,
    reader,
    index: app.get<ChangeIndex>(CHANGE_INDEX),
    bus: app.get(ChangeBus),
    close: () => app.close(),
  };
}

/** The start (app.init) of an app with the polling module over `items` and `controllers` fails. */
export async function startFailure(db: TestDatabase, controllers: Type[]): Promise<unknown> {
  @Module({ imports: [PollingModule.forRoot(itemsOptions(db))], controllers })
  class FailingModule {}
  const app = await NestFactory.create(FailingModule, { logger: false, abortOnError: false });
  try {
    await app.init();
    return null;
  } catch (error) {
    return error;
  } finally {
    await app.close().catch(() => undefined);
  }
}

/** Creates the `items` table the change-capture tests write to, partitioned into feeds by `run`. */
export async function createItemsTable(db: TestDatabase): Promise<void> {
  const client = new Client(db.config);
  await client.connect();
  try {
    await client.query(
      `CREATE TABLE items (id bigserial PRIMARY KEY, run int NOT NULL DEFAULT 0, body text)`,
    );
  } finally {
    await client.end();
  }
}

export function itemsOptions(db: TestDatabase, extra: Partial<PollingModuleOptions> = {}) {
  return {
    postgres: { url: db.url },
    tables: [{ table: 'items', partition: 'run' }],
    installSchema: true,
    ...extra,
  } satisfies PollingModuleOptions;
}

/** Every change of a feed in the index, ascending by position (the whole feed, in one read). */
export async function indexedChanges(index: ChangeIndex, feed: string) {
  const head = await index.head();
  if (!head) return [];
  const result = await index.changesSince(feed, head.generation, head.floor, 1_000_000);
  if (result.kind !== 'changes') throw new Error(`unexpected index answer ${result.kind}`);
  return result.changed;
}

/** The change log's truth for a feed, in commit-safe order. */
export async function loggedChanges(client: Client, feed: string): Promise<string[]> {
  const { rows } = await client.query(
    'SELECT resource_id FROM polling_changes WHERE feed = $1 ORDER BY xid, id',
    [feed],
  );
  return rows.map((r) => r.resource_id as string);
}

/** Commits one row into `items` for feed `run`; resolves with its id (as the feed sends it). */
export async function insertItem(writer: Client, run: number, body = 'item'): Promise<string> {
  const { rows } = await writer.query<{ id: string }>(
    'INSERT INTO items (run, body) VALUES ($1, $2) RETURNING id',
    [run, body],
  );
  return rows[0].id;
}
