import {
  Catch,
  HttpException,
  ValidationPipe,
  VersioningType,
  type ArgumentsHost,
  type CallHandler,
  type ExceptionFilter,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import fastifyCompress from '@fastify/compress';
import fastifyHelmet from '@fastify/helmet';
import type { INestApplication } from '@nestjs/common';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import compression from 'compression';
import type { AnyReply, PlatformOptions, TestPlatform } from '../support/http-platform';
import helmet from 'helmet';
import { map, type Observable } from 'rxjs';

/** Where a host app listens, and so how the test reaches it. */
export type Listen =
  | { kind: 'tcp'; host: '127.0.0.1' | '::1' }
  | { kind: 'unix' }
  | { kind: 'https'; host: '127.0.0.1' };

export interface HostAppConfig {
  name: string;
  /** Path prefix every route gets (global prefix, URI version). */
  base: string;
  listen: Listen;
  /**
   * The app's own set-up between create() and listen(); Express middleware on Express, the
   * Fastify plugin that does the same on Fastify.
   */
  configure?(app: INestApplication, platform: TestPlatform): unknown;
  /** Set when the platform is made (Fastify's trustProxy cannot change later). */
  platformOptions?: PlatformOptions;
  /** Headers the test's client sends on every request (a proxy's X-Forwarded-For, gzip, ...). */
  clientHeaders?: Record<string, string>;
  /** The body the feed route answered, from what the client received (e.g. unwrap an envelope). */
  unwrap?(body: unknown): unknown;
}

/** Nest's documented response mapping: every handler result becomes `{data}`. */
class EnvelopeInterceptor implements NestInterceptor {
  intercept(_context: ExecutionContext, next: CallHandler): Observable<unknown> {
    return next.handle().pipe(map((data: unknown) => ({ data })));
  }
}

/**
 * The envelope as a Fastify app with @fastify/compress needs it: an answer without a body (304,
 * 204) stays without one. The plugin compresses any payload, a 304's `{}` too, and Node then drops
 * the body but not its `Content-Encoding: gzip`: the client fails to unzip nothing.
 */
class BodylessAwareEnvelopeInterceptor implements NestInterceptor {
  intercept(_context: ExecutionContext, next: CallHandler): Observable<unknown> {
    return next.handle().pipe(map((data: unknown) => (data === undefined ? data : { data })));
  }
}

/** An app-wide error format of its own: `{error: {status, message}}`. */
@Catch(HttpException)
export class AppErrorFilter implements ExceptionFilter {
  catch(exception: HttpException, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<AnyReply>();
    const status = exception.getStatus();
    const body = exception.getResponse();
    const message = typeof body === 'string' ? body : (body as { message?: unknown }).message;
    res.status(status).send({ error: { status, message } });
  }
}

const tcp: Listen = { kind: 'tcp', host: '127.0.0.1' };

/** Every answer compressed: Express's compression() middleware, or @fastify/compress. */
async function useCompression(app: INestApplication, platform: TestPlatform): Promise<void> {
  if (platform === 'express') app.use(compression({ threshold: 0 }));
  else await (app as NestFastifyApplication).register(fastifyCompress, { threshold: 0 });
}

/** Ordinary Nest 11 app set-ups from the framework's docs and common production settings. */
export const HOST_APP_CONFIGS: HostAppConfig[] = [
  {
    name: 'global prefix',
    base: '/api',
    listen: tcp,
    configure: (app) => app.setGlobalPrefix('api'),
  },
  {
    name: 'URI versioning',
    base: '/v1',
    listen: tcp,
    configure: (app) => app.enableVersioning({ type: VersioningType.URI, defaultVersion: '1' }),
  },
  {
    name: 'response envelope interceptor',
    base: '',
    listen: tcp,
    configure: (app) => app.useGlobalInterceptors(new EnvelopeInterceptor()),
    unwrap: (body) => (body as { data: unknown }).data,
  },
  {
    name: 'exception filter and ValidationPipe',
    base: '',
    listen: tcp,
    configure: (app) => {
      app.useGlobalFilters(new AppErrorFilter());
      app.useGlobalPipes(
        new ValidationPipe({ whitelist: true, transform: true, forbidUnknownValues: true }),
      );
    },
  },
  {
    name: 'compression',
    base: '',
    listen: tcp,
    configure: useCompression,
    clientHeaders: { 'accept-encoding': 'gzip' },
  },
  {
    name: 'helmet',
    base: '',
    listen: tcp,
    configure: async (app, platform) => {
      if (platform === 'express') app.use(helmet());
      else await (app as NestFastifyApplication).register(fastifyHelmet);
    },
  },
  { name: 'listening on ::1', base: '', listen: { kind: 'tcp', host: '::1' } },
  { name: 'unix socket', base: '', listen: { kind: 'unix' } },
  { name: 'HTTPS (self-signed)', base: '', listen: { kind: 'https', host: '127.0.0.1' } },
  {
    // What a production API often has all at once.
    name: 'prefix, URI versioning, envelope, filter, ValidationPipe and compression together',
    base: '/api/v1',
    listen: tcp,
    configure: async (app, platform) => {
      app.setGlobalPrefix('api');
      app.enableVersioning({ type: VersioningType.URI, defaultVersion: '1' });
      app.useGlobalInterceptors(
        platform === 'express' ? new EnvelopeInterceptor() : new BodylessAwareEnvelopeInterceptor(),
      );
      app.useGlobalFilters(new AppErrorFilter());
      app.useGlobalPipes(
        new ValidationPipe({ whitelist: true, transform: true, forbidUnknownValues: true }),
      );
      await useCompression(app, platform);
    },
    clientHeaders: { 'accept-encoding': 'gzip' },
    unwrap: (body) => (body as { data: unknown }).data,
  },
  {
    name: 'trust proxy behind a proxy header',
    base: '',
    listen: tcp,
    platformOptions: { trustProxy: 'loopback' },
    clientHeaders: { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'https' },
  },
];
