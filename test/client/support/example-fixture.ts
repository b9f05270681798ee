import { Client } from 'pg';
import { HeldRequests } from '../../../src/http-polling/held-requests.service';
import { startExampleApp, type ExampleApp } from '../../../example/example-app';
import { startExampleOnFreshDatabase, type RunningExample } from '../../support/example-app';

/** The example's demo keys (API_KEYS default): key-1 is user1, key-2 is user2. */
export const auth = (key = 'key-1') => ({ Authorization: `Bearer ${key}` });

/** A message row as the example's feed routes send it. */
export interface MessageRow {
  id: string;
  channel: string;
  author: string;
  body: string;
}

/** Body of `GET /channels/:channel/changes` (and of its feed in a batch). */
export interface MessageChanges {
  changes: { id: string; op: 'upsert' | 'delete'; row?: MessageRow }[];
  cursor: string;
}

/** The example app (example/example-app.ts) on a fresh, migrated database, plus a SQL writer. */
export interface ExampleFixture {
  run: RunningExample;
  /** The app the tests talk to; another one may be put here (a restart, other settings). */
  app: ExampleApp;
  writer: Client;
  /** Held long polls on `app`. */
  held(): number;
  /** Starts another example app on the same database (no migrations: they are applied). */
  startApp(env?: Record<string, string>): Promise<ExampleApp>;
  /** Closes an app of this fixture at once (the first one or one from startApp). */
  stopApp(app: ExampleApp): Promise<void>;
  /** Inserts a message with SQL (a write the app did not make); returns its id. */
  insert(channel: string, body?: string): Promise<string>;
  /** The feed head of a route (a GET without since, as user1). */
  head(path: string, base?: string): Promise<string>;
  close(): Promise<void>;
}

export async function startExampleFixture(
  env: Record<string, string> = {},
): Promise<ExampleFixture> {
  const run = await startExampleOnFreshDatabase(env);
  const open = new Set<ExampleApp>([run.example]);
  const writer = new Client(run.db.config);
  await writer.connect();
  const fixture: ExampleFixture = {
    run,
    app: run.example,
    writer,
    held: () => fixture.app.app.get(HeldRequests).size,
    async startApp(more = {}) {
      const app = await startExampleApp(
        {
          DATABASE_URL: run.db.url,
          PORT: '0',
          HOST: '127.0.0.1',
          TASK_DELAY_MS: '200',
          ...env,
          ...more,
        },
        { logger: false },
      );
      open.add(app);
      return app;
    },
    async stopApp(app) {
      if (!open.delete(app)) return;
      // After an aborted fetch, undici keeps a spare connection open that Node's server.close()
      // would wait seconds for: drop every connection first.
      app.app.getHttpServer().closeAllConnections();
      await app.close();
    },
    async insert(channel, body = 'row') {
      const { rows } = await writer.query<{ id: string }>(
        "INSERT INTO messages (channel, author, body) VALUES ($1, 'user1', $2) RETURNING id",
        [channel, body],
      );
      return rows[0].id;
    },
    async head(path, base = fixture.app.url) {
      const res = await fetch(`${base}${path}`, { headers: auth() });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`head of ${path}: ${res.status}`);
      return res.headers.get('poll-cursor')!;
    },
    async close() {
      for (const app of [...open]) await fixture.stopApp(app);
      await writer.end();
      await run.db.drop();
    },
  };
  return fixture;
}
