import {
  CanActivate,
  ExecutionContext,
  Inject,
  Injectable,
  SetMetadata,
  UnauthorizedException,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { PollingRequest } from '../../src';
import { EXAMPLE_CONFIG, type ExampleConfig } from '../config';

const PUBLIC = 'example:public';
/** No API key needed (health, the demo page). */
export const Public = () => SetMetadata(PUBLIC, true);

const KEY_IN_QUERY = 'example:key-in-query';
/**
 * Also accept the key as `?key=` (only where needed: a browser's EventSource cannot send an
 * Authorization header). A key in a URL ends up in access logs and browser history: a demo
 * shortcut; use a cookie session or a short-lived stream token in a real app.
 */
export const KeyInQuery = () => SetMetadata(KEY_IN_QUERY, true);

/** The request on either HTTP platform (Express or Fastify), with the user the key belongs to. */
export interface AuthedRequest extends PollingRequest {
  user: { id: string };
}

/** `Authorization: Bearer <key>` (or `?key=` on @KeyInQuery routes) → `req.user`; keys from API_KEYS. */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    @Inject(EXAMPLE_CONFIG) private readonly config: ExampleConfig,
  ) {}

  canActivate(context: ExecutionContext): boolean {
    const isPublic = this.reflector.getAllAndOverride<boolean>(PUBLIC, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (isPublic) return true;
    const req = context.switchToHttp().getRequest<AuthedRequest>();
    const match = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
    const key = match ? match[1] : this.queryKey(context, req);
    const user = key ? this.config.apiKeys.get(key) : undefined;
    if (!user) throw new UnauthorizedException('send Authorization: Bearer <api key>');
    req.user = { id: user };
    return true;
  }

  private queryKey(context: ExecutionContext, req: PollingRequest): string | undefined {
    if (!this.reflector.get<boolean>(KEY_IN_QUERY, context.getHandler())) return undefined;
    const key = (req.query as Record<string, unknown> | undefined)?.key;
    return typeof key === 'string' ? key : undefined;
  }
}
