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
import type { NestExpressApplication } from '@nestjs/platform-express';
import compression from 'compression';
import type { Response } from 'express';
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
  /** The app's own set-up between create() and listen(). */
  configure?(app: NestExpressApplication): void;
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

/** An app-wide error format of its own: `{error: {status, message}}`. */
@Catch(HttpException)
class AppErrorFilter implements ExceptionFilter {
  catch(exception: HttpException, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<Response>();
    const status = exception.getStatus();
    const body = exception.getResponse();
    const message = typeof body === 'string' ? body : (body as { message?: unknown }).message;
    res.status(status).json({ error: { status, message } });
  }
}

const tcp: Listen = { kind: 'tcp', host: '127.0.0.1' };

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
    configure: (app) => app.use(compression({ threshold: 0 })),
    clientHeaders: { 'accept-encoding': 'gzip' },
  },
  { name: 'helmet', base: '', listen: tcp, configure: (app) => app.use(helmet()) },
  { name: 'listening on ::1', base: '', listen: { kind: 'tcp', host: '::1' } },
  { name: 'unix socket', base: '', listen: { kind: 'unix' } },
  { name: 'HTTPS (self-signed)', base: '', listen: { kind: 'https', host: '127.0.0.1' } },
  {
    name: 'trust proxy behind a proxy header',
    base: '',
    listen: tcp,
    configure: (app) => app.set('trust proxy', 'loopback'),
    clientHeaders: { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'https' },
  },
];
