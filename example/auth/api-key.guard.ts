import {
  CanActivate,
  ExecutionContext,
  Inject,
  Injectable,
  SetMetadata,
  UnauthorizedException,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { EXAMPLE_CONFIG, type ExampleConfig } from '../config';

const PUBLIC = 'example:public';
/** No API key needed (health, the demo page). */
export const Public = () => SetMetadata(PUBLIC, true);

export interface AuthedRequest extends Request {
  user: { id: string };
}

/** `Authorization: Bearer <key>` → `req.user`; keys come from API_KEYS. */
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
    const user = match ? this.config.apiKeys.get(match[1]) : undefined;
    if (!user) throw new UnauthorizedException('send Authorization: Bearer <api key>');
    req.user = { id: user };
    return true;
  }
}
