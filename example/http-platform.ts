import type { INestApplication, NestApplicationOptions } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { ExampleConfig } from './config';

/** TRUST_PROXY=1: the compose scale profile's nginx; any other value is a proxy-addr list. */
function trustedProxies(value: string | undefined): string | undefined {
  if (!value) return undefined;
  return value === '1' ? 'loopback, uniquelocal' : value;
}

/**
 * The app on HTTP_PLATFORM: Express (Nest's default) or Fastify. Behind a proxy the client
 * address comes from X-Forwarded-For: Express's `trust proxy`, Fastify's `trustProxy`.
 */
export async function createOnPlatform(
  module: Parameters<typeof NestFactory.create>[0],
  config: ExampleConfig,
  env: NodeJS.ProcessEnv,
  options: NestApplicationOptions,
): Promise<INestApplication> {
  const trustProxy = trustedProxies(env.TRUST_PROXY);
  if (config.httpPlatform === 'fastify') {
    // Imported only here: an Express deployment does not need the Fastify packages.
    const { FastifyAdapter } = await import('@nestjs/platform-fastify');
    // Channel names are route parameters up to 200 characters (Fastify's default limit is 100).
    const adapter = new FastifyAdapter({
      routerOptions: { maxParamLength: 256 },
      ...(trustProxy ? { trustProxy } : {}),
    });
    return NestFactory.create<NestFastifyApplication>(module, adapter, options);
  }
  const app = await NestFactory.create<NestExpressApplication>(module, options);
  if (trustProxy) app.set('trust proxy', trustProxy);
  return app;
}

/** The demo page and the client SDK's browser build, as static files. */
export async function serveStatic(
  app: INestApplication,
  config: ExampleConfig,
  page: string,
  sdk: string,
): Promise<void> {
  if (config.httpPlatform === 'fastify') {
    const fastify = app as NestFastifyApplication;
    fastify.useStaticAssets({ root: page });
    // A second @fastify/static instance must not decorate the reply again.
    fastify.useStaticAssets({ root: sdk, prefix: '/sdk/', decorateReply: false });
    return;
  }
  const express = app as NestExpressApplication;
  express.useStaticAssets(page);
  express.useStaticAssets(sdk, { prefix: '/sdk/' });
}
