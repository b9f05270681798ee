import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startExampleApp, type ExampleApp } from '../../example/example-app';
import { createTestDatabase, type TestDatabase } from './test-database';

export interface RunningExample {
  db: TestDatabase;
  example: ExampleApp;
  url: string;
  close(): Promise<void>;
}

/** The example app on a fresh database with its migrations applied, on an ephemeral port. */
export async function startExampleOnFreshDatabase(
  env: Record<string, string> = {},
): Promise<RunningExample> {
  const db = await createTestDatabase();
  const example = await startExampleApp(
    {
      DATABASE_URL: db.url,
      MIGRATE_ON_START: '1',
      PORT: '0',
      HOST: '127.0.0.1',
      TASK_DELAY_MS: '200',
      // The jest project's platform (Express, or Fastify in e2e-fastify).
      HTTP_PLATFORM: process.env.TEST_HTTP_PLATFORM ?? 'express',
      ...env,
    },
    { logger: false },
  );
  return {
    db,
    example,
    url: example.url,
    // The app's own shutdown closes the kept-alive connections of the test's fetch calls.
    close: async () => {
      await example.close();
      await db.drop();
    },
  };
}

/** The demo page imports the SDK as an ES module from dist/client-esm: build it when missing. */
export function ensureClientEsmBuilt(): void {
  const root = join(__dirname, '..', '..');
  if (existsSync(join(root, 'dist', 'client-esm', 'index.js'))) return;
  execFileSync('npx', ['tsc', '-p', 'tsconfig.client-esm.json'], { cwd: root, stdio: 'inherit' });
}
