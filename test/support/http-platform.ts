import type { INestApplication, NestApplicationOptions, Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';

export type TestPlatform = 'express' | 'fastify';

/**
 * The HTTP platform the e2e and host-app layers run on: Express, or Fastify in the jest projects
 * that set TEST_HTTP_PLATFORM=fastify (jest.config.js), so the same specs run on both.
 */
export function testPlatform(): TestPlatform {
  return process.env.TEST_HTTP_PLATFORM === 'fastify' ? 'fastify' : 'express';
}

export interface PlatformOptions {
  /** Client address from X-Forwarded-For sent by a loopback proxy (Express's `trust proxy`). */
  trustProxy?: string;
}

/** The adapter for `createNestApplication` on the test's platform (undefined: Express). */
export function platformAdapter(
  platform: TestPlatform = testPlatform(),
  extra: PlatformOptions & { https?: unknown } = {},
): FastifyAdapter | undefined {
  if (platform === 'express') return undefined;
  return new FastifyAdapter({
    // Route parameters up to the library's 200-character partitions: Fastify answers a longer
    // parameter than its default 100 with 414 before any route runs.
    routerOptions: { maxParamLength: 1000 },
    ...(extra.https ? { https: extra.https as never } : {}),
    ...(extra.trustProxy ? { trustProxy: extra.trustProxy } : {}),
  });
}

/** `NestFactory.create` on the test's platform. */
export async function createPlatformApp(
  module: Type<unknown>,
  options: NestApplicationOptions = {},
  platform: TestPlatform = testPlatform(),
  extra: PlatformOptions = {},
): Promise<INestApplication> {
  if (platform === 'express') {
    const app = await NestFactory.create(module, options);
    if (extra.trustProxy) app.getHttpAdapter().getInstance().set('trust proxy', extra.trustProxy);
    return app;
  }
  const adapter = platformAdapter(platform, { ...extra, https: options.httpsOptions })!;
  return NestFactory.create(module, adapter, options);
}

/**
 * What an exception filter of a test app answers through, on either platform: Express's response
 * and Fastify's reply both have `status(code)` and `send(body)` (an object is sent as JSON).
 */
export interface AnyReply {
  status(code: number): AnyReply;
  send(body?: unknown): unknown;
}
