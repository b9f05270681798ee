import { Logger, type INestApplication } from '@nestjs/common';
import { existsSync } from 'node:fs';
import type { Server } from 'node:http';
import { join, resolve } from 'node:path';
import { ChangeReader, installJsonHttpErrors } from '../src';
import { ExampleAppModule } from './app.module';
import {
  embeddedPostgresPort,
  loadConfig,
  usesEmbeddedPostgres,
  type ExampleConfig,
} from './config';
import type { EmbeddedPostgres } from './embedded-postgres';
import { ExampleErrorsFilter } from './errors/database-unavailable.filter';
import { createOnPlatform, serveStatic } from './http-platform';
import { setupOpenApi } from './openapi';
import { rawStreamBody } from './streams/test-writes/raw-body';

export interface ExampleApp {
  app: INestApplication;
  url: string;
  close(): Promise<void>;
}

/** The repository root, whether this runs from example/ (ts-node) or dist-example/example/. */
function repositoryRoot(): string {
  for (const candidate of [resolve(__dirname, '..'), resolve(__dirname, '..', '..')]) {
    if (existsSync(join(candidate, 'example', 'public'))) return candidate;
  }
  return resolve(__dirname, '..');
}

/**
 * Without DATABASE_URL outside production: a real PostgreSQL from the devDependency
 * embedded-postgres (imported only here), its migrations applied at start. Data in EMBEDDED_PG_DIR
 * (default .data/embedded-postgres in the repository), port EMBEDDED_PG_PORT (default 54329, or
 * any free port when that one is taken).
 */
async function startEmbedded(
  env: NodeJS.ProcessEnv,
  logger: Logger | undefined,
): Promise<EmbeddedPostgres> {
  const { startEmbeddedPostgres, defaultEmbeddedDataDir } = await import('./embedded-postgres');
  const dataDir = resolve(env.EMBEDDED_PG_DIR || defaultEmbeddedDataDir(repositoryRoot()));
  const pg = await startEmbeddedPostgres({
    dataDir,
    port: embeddedPostgresPort(env),
    portSetting: 'EMBEDDED_PG_PORT',
    log: (line) => logger?.log(line),
  });
  logger?.warn(
    `DATABASE_URL is not set: using an EMBEDDED PostgreSQL ${pg.version} at ${pg.url} ` +
      `(data in ${pg.dataDir}, ${pg.created ? 'new' : 'reused'}; migrations applied at start; ` +
      'development only: set DATABASE_URL for a real database)',
  );
  return pg;
}

/**
 * Closes slow clients (slowloris) with a 408: headers not complete after HTTP_HEADERS_TIMEOUT_MS,
 * a request (headers and body) not complete after HTTP_REQUEST_TIMEOUT_MS. Node's defaults, 60 s
 * and 300 s checked every 30 s, let idle sockets pile up. A held long poll is not cut: the
 * request timeout ends once the request has been received.
 */
function closeSlowClients(server: Server, config: ExampleConfig): void {
  server.headersTimeout = config.httpHeadersTimeoutMs;
  server.requestTimeout = Math.max(config.httpHeadersTimeoutMs, config.httpRequestTimeoutMs);
  // Read when the server starts listening (typed only as a createServer option): check every
  // second rather than every 30 s, so a timeout is enforced within a second of its due time.
  Object.assign(server, {
    connectionsCheckingInterval: Math.min(1000, config.httpHeadersTimeoutMs),
  });
}

/** SIGINT/SIGTERM/SIGHUP: close the app, then stop the embedded server, then exit by the signal. */
function closeOnSignals(close: () => Promise<void>): () => void {
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  let closing = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (closing) return;
    closing = true;
    close()
      .catch((error: Error) => console.error(`example app: error while closing: ${error.message}`))
      .finally(() => {
        unsubscribe();
        process.kill(process.pid, signal);
      });
  };
  const unsubscribe = () => signals.forEach((s) => process.removeListener(s, onSignal));
  signals.forEach((s) => process.on(s, onSignal));
  return unsubscribe;
}

/** Starts the example app from environment variables (defaults documented in the README). */
export async function startExampleApp(
  env: NodeJS.ProcessEnv = process.env,
  options: { logger?: false } = {},
): Promise<ExampleApp> {
  const logger = options.logger === false ? undefined : new Logger('ExampleApp');
  let embedded: EmbeddedPostgres | undefined;
  // If the process exits without closing the app (a start-up error, process.exit), stop it anyway.
  const stopOnExit = () => embedded?.stopSync();
  if (usesEmbeddedPostgres(env)) {
    embedded = await startEmbedded(env, logger);
    process.on('exit', stopOnExit);
    env = { ...env, DATABASE_URL: embedded.url, MIGRATE_ON_START: '1' };
  }
  const stopEmbedded = async () => {
    process.removeListener('exit', stopOnExit);
    await embedded?.stop();
  };
  try {
    const config = loadConfig(env);
    const app = await createOnPlatform(ExampleAppModule.forConfig(config), config, env, {
      logger: options.logger === false ? ['error'] : undefined,
    });
    const close = async () => {
      try {
        await app.close();
      } finally {
        await stopEmbedded();
      }
    };
    // The embedded server must stop after the app has closed its connections; Nest's own shutdown
    // hooks exit the process when the app is closed, so the signals are handled here then.
    let unsubscribe = () => undefined as void;
    if (embedded) unsubscribe = closeOnSignals(close);
    else app.enableShutdownHooks();
    try {
      const root = repositoryRoot();
      await serveStatic(
        app,
        config,
        join(root, 'example', 'public'),
        join(root, 'dist', 'client-esm'),
      );
      setupOpenApi(app); // /docs and /docs-json
      // Test only: scratch stream writes are read as bytes, before Nest's body parsers.
      if (config.durableStreamTestWrites) app.use('/v1/stream', rawStreamBody);
      closeSlowClients(app.getHttpServer() as Server, config);
      // Before listen: Nest reads global filters when it sets up its routes.
      app.useGlobalFilters(new ExampleErrorsFilter(app.getHttpAdapter()));
      await app.listen(config.port, env.HOST ?? '0.0.0.0');
      installJsonHttpErrors(app);
      await app.get(ChangeReader).whenLive();
    } catch (error) {
      unsubscribe();
      await app.close().catch(() => undefined);
      throw error;
    }
    const address = app.getHttpServer().address() as { port: number };
    const url = `http://127.0.0.1:${address.port}`;
    logger?.log(
      `serving on ${url} (index: ${config.redisUrl ? 'Redis' : 'in-memory'}; demo page at ${url}/)`,
    );
    return {
      app,
      url,
      close: async () => {
        unsubscribe();
        await close();
      },
    };
  } catch (error) {
    await stopEmbedded().catch(() => undefined);
    throw error;
  }
}
