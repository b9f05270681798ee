import { Module } from '@nestjs/common';
import type { INestApplication } from '@nestjs/common';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { rmSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChangeReader, installJsonHttpErrors, PollingModule } from '../../src';
import { createPlatformApp, testPlatform } from '../support/http-platform';
import { itemsOptions } from '../support/polling-app';
import type { TestDatabase } from '../support/test-database';
import type { HostAppConfig } from './host-app-configs';
import { HostClient, type Endpoint } from './host-client';
import { HostFeedsController } from './host-feeds.controller';
import { selfSignedCertificate } from './self-signed';

export interface HostApp {
  app: INestApplication;
  client: HostClient;
  close(): Promise<void>;
}

let sockets = 0;

/** One host app: its own module and bootstrap, set up as `config` says, on `db`. */
export async function startHostApp(config: HostAppConfig, db: TestDatabase): Promise<HostApp> {
  @Module({
    imports: [PollingModule.forRoot(itemsOptions(db))],
    controllers: [HostFeedsController],
  })
  class HostAppModule {}

  const tls = config.listen.kind === 'https' ? selfSignedCertificate() : undefined;
  const platform = testPlatform();
  const app = await createPlatformApp(
    HostAppModule,
    { logger: process.env.TEST_LOGS ? undefined : ['error'], httpsOptions: tls },
    platform,
    config.platformOptions,
  );
  app.enableShutdownHooks();
  await config.configure?.(app, platform);

  let endpoint: Endpoint;
  let socketPath: string | undefined;
  const listen = config.listen;
  if (listen.kind === 'unix') {
    socketPath = join(tmpdir(), `host-app-${process.pid}-${++sockets}.sock`);
    rmSync(socketPath, { force: true });
    // Fastify's listen takes a path as an option; a string argument is a port to it.
    if (platform === 'fastify') await (app as NestFastifyApplication).listen({ path: socketPath });
    else await app.listen(socketPath);
    endpoint = { kind: 'unix', path: socketPath };
  } else {
    await app.listen(0, listen.host);
    const { port } = (app.getHttpServer() as Server).address() as AddressInfo;
    endpoint =
      listen.kind === 'https'
        ? { kind: 'https', host: listen.host, port, ca: tls!.cert }
        : { kind: 'tcp', host: listen.host, port };
  }
  installJsonHttpErrors(app);
  await app.get(ChangeReader).whenLive();
  return {
    app,
    client: new HostClient(endpoint, config.clientHeaders),
    close: async () => {
      (app.getHttpServer() as Server).closeAllConnections();
      await app.close();
      if (socketPath) rmSync(socketPath, { force: true });
    },
  };
}
