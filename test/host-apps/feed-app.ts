import { Module, type INestApplication, type ModuleMetadata } from '@nestjs/common';
import { createPlatformApp } from '../support/http-platform';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  ChangeReader,
  installJsonHttpErrors,
  PollingModule,
  type PollingModuleOptions,
} from '../../src';
import { itemsOptions } from '../support/polling-app';
import { createItemsTable } from '../support/polling-app';
import { createTestDatabase, type TestDatabase } from '../support/test-database';

/** An app with the polling module over `items` and the given controllers, on 127.0.0.1. */
export interface FeedAnswer {
  status: number;
  cursor?: string;
  body?: Record<string, unknown>;
}

export interface Started {
  app: INestApplication;
  url: string;
  close(): Promise<void>;
}

export async function startApp(
  db: TestDatabase,
  metadata: Pick<ModuleMetadata, 'controllers' | 'providers'>,
  configure?: (app: INestApplication) => void,
  options: Partial<PollingModuleOptions> = {},
): Promise<Started> {
  @Module({ imports: [PollingModule.forRoot(itemsOptions(db, options))], ...metadata })
  class FeedAppModule {}
  const app = await createPlatformApp(FeedAppModule, {
    logger: process.env.TEST_LOGS ? undefined : ['error'],
  });
  configure?.(app);
  await app.listen(0, '127.0.0.1');
  installJsonHttpErrors(app);
  await app.get(ChangeReader).whenLive();
  const { port } = (app.getHttpServer() as Server).address() as AddressInfo;
  return {
    app,
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      (app.getHttpServer() as Server).closeAllConnections();
      await app.close();
    },
  };
}

export async function batch(
  url: string,
  feeds: Record<string, string | null>,
  headers: Record<string, string> = {},
  wait?: number,
): Promise<{ status: number; feeds: Record<string, FeedAnswer>; text: string; cookies: string[] }> {
  const res = await fetch(`${url}/poll`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(wait === undefined ? { feeds } : { feeds, wait }),
  });
  const text = await res.text();
  const json = text ? (JSON.parse(text) as { feeds?: Record<string, FeedAnswer> }) : {};
  return { status: res.status, feeds: json.feeds ?? {}, text, cookies: res.headers.getSetCookie() };
}

export function expectStatus(answer: { status: number; text: string }, status: number): void {
  if (answer.status !== status) {
    throw new Error(`expected ${status}, got ${answer.status}: ${answer.text.slice(0, 300)}`);
  }
}

/**
 * For a spec: before all its tests, a database with `items` and an app over it (see startApp);
 * closed and dropped after them. Read `fixture.host` inside tests.
 */
export function feedAppFixture(
  metadata: Pick<ModuleMetadata, 'controllers' | 'providers'>,
  configure?: (app: INestApplication) => void,
  options: Partial<PollingModuleOptions> = {},
): { host: Started; db: TestDatabase } {
  const fixture = {} as { host: Started; db: TestDatabase };
  beforeAll(async () => {
    fixture.db = await createTestDatabase();
    await createItemsTable(fixture.db);
    fixture.host = await startApp(fixture.db, metadata, configure, options);
  }, 30_000);
  afterAll(async () => {
    await fixture.host?.close();
    await fixture.db?.drop();
  });
  return fixture;
}
