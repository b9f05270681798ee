import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ChangeReader, installJsonHttpErrors } from '../src';
import { ExampleAppModule } from './app.module';
import { loadConfig } from './config';

export interface ExampleApp {
  app: NestExpressApplication;
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

/** Starts the example app from environment variables (defaults documented in the README). */
export async function startExampleApp(
  env: NodeJS.ProcessEnv = process.env,
  options: { logger?: false } = {},
): Promise<ExampleApp> {
  const config = loadConfig(env);
  const app = await NestFactory.create<NestExpressApplication>(ExampleAppModule.forConfig(config), {
    logger: options.logger === false ? ['error'] : undefined,
  });
  app.enableShutdownHooks();
  // Behind a proxy (the compose scale profile's nginx), take the client address from it.
  if (env.TRUST_PROXY)
    app.set('trust proxy', env.TRUST_PROXY === '1' ? 'loopback, uniquelocal' : env.TRUST_PROXY);
  const root = repositoryRoot();
  app.useStaticAssets(join(root, 'example', 'public'));
  app.useStaticAssets(join(root, 'dist', 'client-esm'), { prefix: '/sdk/' });
  await app.listen(config.port, env.HOST ?? '0.0.0.0');
  installJsonHttpErrors(app);
  await app.get(ChangeReader).whenLive();
  const address = app.getHttpServer().address() as { port: number };
  const url = `http://127.0.0.1:${address.port}`;
  if (options.logger !== false) {
    new Logger('ExampleApp').log(
      `serving on ${url} (index: ${config.redisUrl ? 'Redis' : 'in-memory'}; demo page at ${url}/)`,
    );
  }
  return { app, url, close: () => app.close() };
}
