import { Injectable, OnModuleInit, Optional } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { PollingConfigError } from '../../polling-config.error';
import { ExpressPlatform } from './express-platform';
import { FastifyPlatform } from './fastify-platform';
import type { HttpPlatform } from './http-platform';

/**
 * The app's HTTP platform, from Nest's HttpAdapterHost: Express or Fastify. Any other adapter
 * fails the start, before a request could meet a transport that does not know its responses.
 */
@Injectable()
export class HttpPlatformHost implements OnModuleInit {
  private chosen: HttpPlatform | null = null;

  constructor(@Optional() private readonly adapterHost?: HttpAdapterHost) {}

  onModuleInit(): void {
    // A standalone application context (a worker without HTTP) has no adapter: nothing to check.
    if (this.adapterHost?.httpAdapter) this.chosen = this.choose();
  }

  get platform(): HttpPlatform {
    return (this.chosen ??= this.choose());
  }

  private choose(): HttpPlatform {
    const adapter = this.adapterHost?.httpAdapter;
    const type = adapter?.getType?.();
    if (adapter && type === 'express') return new ExpressPlatform(adapter);
    if (adapter && type === 'fastify') return new FastifyPlatform(adapter);
    throw new PollingConfigError(
      `the HTTP platform "${String(type ?? adapter?.constructor?.name ?? 'none')}" is not ` +
        'supported: run the app on @nestjs/platform-express (the default) or ' +
        '@nestjs/platform-fastify',
    );
  }
}
