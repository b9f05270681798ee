import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { installScratchApp, packLibrary, ROOT, run } from './scratch-app';

/*
 * The package as a user installs it: `npm pack`, the tarball installed into a new app that has
 * none of the optional peers, compiled with skipLibCheck: false and run against PostgreSQL; and
 * @arethetypeswrong/cli on the same tarball.
 */

const TSCONFIG = {
  compilerOptions: {
    module: 'commonjs',
    moduleResolution: 'node10',
    target: 'ES2022',
    strict: true,
    skipLibCheck: false,
    experimentalDecorators: true,
    emitDecoratorMetadata: true,
    esModuleInterop: true,
    types: ['node'],
    outDir: 'dist',
  },
  include: ['src'],
};

// A feed in the fewest lines: migrations + trackTable, one @LongPoll route, the SDK in Node.
const MAIN = `
import 'reflect-metadata';
import type { AddressInfo } from 'node:net';
import { Controller, Get, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { DataSource } from 'typeorm';
import {
  LongPoll,
  PollContext,
  PollingConfigError,
  PollingModule,
  pollingMigrations,
  trackTable,
  type PollingModuleOptions,
} from 'nestjs-polling';
import { followFeed } from 'nestjs-polling/client';

const url = process.env.DATABASE_URL!;

@Controller('notes')
class NotesController {
  @Get('changes')
  @LongPoll({ feed: 'notes' })
  changes(@PollContext() poll: PollContext) {
    return { ids: poll.changedIds, cursor: poll.cursor };
  }
}

function appModule(options: PollingModuleOptions) {
  @Module({ imports: [PollingModule.forRoot(options)], controllers: [NotesController] })
  class AppModule {}
  return AppModule;
}

async function feed(): Promise<void> {
  const db = new DataSource({ type: 'postgres', url, migrations: pollingMigrations });
  await db.initialize();
  await db.query('CREATE TABLE notes (id serial PRIMARY KEY, body text)');
  await db.runMigrations();
  await trackTable(db, 'notes', { key: 'id' });

  const module = appModule({ postgres: { url }, tables: [{ table: 'notes' }] });
  const app = await NestFactory.create(module, { logger: false });
  app.enableShutdownHooks();
  await app.listen(0, '127.0.0.1');
  const { port } = app.getHttpServer().address() as AddressInfo;

  const stop = new AbortController();
  const got: string[][] = [];
  await followFeed<{ ids: string[]; cursor: string }>({
    baseUrl: 'http://127.0.0.1:' + port,
    url: '/notes/changes',
    wait: 10,
    signal: stop.signal,
    onChanges: async (body) => {
      got.push(body.ids);
      if (got.length === 1) await db.query("INSERT INTO notes (body) VALUES ('hello')");
      else stop.abort();
    },
  });
  console.log(JSON.stringify({ got }));
  await app.close();
  await db.destroy();
}

async function withRedis(): Promise<void> {
  const module = appModule({
    postgres: { url },
    redis: { url: 'redis://127.0.0.1:6379' },
    tables: [{ table: 'notes' }],
  });
  try {
    const app = await NestFactory.create(module, { logger: false, abortOnError: false });
    await app.close();
    console.log(JSON.stringify({ started: true }));
  } catch (error) {
    const e = error as Error;
    console.log(JSON.stringify({ configError: e instanceof PollingConfigError, message: e.message }));
  }
}

(process.argv[2] === 'redis' ? withRedis() : feed()).catch((error) => {
  console.error(error);
  process.exit(1);
});
`;

const ESM = `
import { followFeed, followFeeds, PollHttpError } from 'nestjs-polling/client';
console.log(JSON.stringify([typeof followFeed, typeof followFeeds, typeof PollHttpError]));
`;

describe('the packed tarball in a new app', () => {
  let db: TestDatabase;
  let packDir: string;
  let tarball: string;
  let app: string;

  beforeAll(async () => {
    db = await createTestDatabase();
    ({ dir: packDir, tarball } = await packLibrary());
    app = mkdtempSync(join(tmpdir(), 'polling-app-'));
  }, 120_000);

  afterAll(async () => {
    await db?.drop();
    for (const dir of [packDir, app]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('ships LICENSE, and source maps carry their sources', async () => {
    const { stdout } = await run('tar', ['-tzf', tarball], { maxBuffer: 1 << 24 });
    const files = stdout.split('\n');
    expect(files).toContain('package/LICENSE');
    expect(files.filter((f) => f.startsWith('package/src/'))).toEqual([]);
    const extracted = mkdtempSync(join(tmpdir(), 'polling-tar-'));
    try {
      await run('tar', ['-xzf', tarball, '-C', extracted]);
      const maps = files.filter((f) => f.endsWith('.map'));
      expect(maps.length).toBeGreaterThan(0);
      const withoutSources = maps.filter((f) => {
        const map = JSON.parse(readFileSync(join(extracted, f), 'utf8'));
        return !(map.sourcesContent?.length === map.sources.length);
      });
      expect(withoutSources).toEqual([]);
    } finally {
      rmSync(extracted, { recursive: true, force: true });
    }
  });

  it('@arethetypeswrong/cli finds no problem (node10, node16 CJS/ESM, bundler)', async () => {
    const attw = join(ROOT, 'node_modules', '.bin', 'attw');
    const result = await run(attw, [tarball, '--format', 'table-flipped'], {
      maxBuffer: 1 << 24,
    }).catch((error: { stdout: string; code: number }) => error);
    expect('code' in result ? result.stdout : 'ok').toBe('ok');
    expect(result.stdout).toContain('No problems found');
  }, 60_000);

  it('installs, compiles with skipLibCheck: false without the optional peers, and runs a live feed', async () => {
    await installScratchApp(app, tarball, {
      'tsconfig.json': JSON.stringify(TSCONFIG, null, 2),
      'src/main.ts': MAIN,
      'esm.mjs': ESM,
    });
    expect(readdirSync(join(app, 'node_modules'))).not.toContain('ioredis');

    const tsc = join(app, 'node_modules', 'typescript', 'bin', 'tsc');
    const compiled = await run('node', [tsc, '-p', '.'], { cwd: app }).catch(
      (error: { stdout: string }) => ({ failed: error.stdout }),
    );
    expect(compiled).not.toHaveProperty('failed');

    const env = { ...process.env, DATABASE_URL: db.url };
    const feed = await run('node', ['dist/main.js'], { cwd: app, env, timeout: 30_000 });
    const { got } = JSON.parse(feed.stdout.trim().split('\n').pop()!);
    expect(got).toEqual([[], ['1']]);

    const redis = await run('node', ['dist/main.js', 'redis'], { cwd: app, env, timeout: 30_000 });
    expect(JSON.parse(redis.stdout.trim().split('\n').pop()!)).toEqual({
      configError: true,
      message: expect.stringMatching(/ioredis is not installed \(npm i ioredis/),
    });

    const esm = await run('node', ['esm.mjs'], { cwd: app });
    expect(JSON.parse(esm.stdout)).toEqual(['function', 'function', 'function']);
  }, 90_000);
});
