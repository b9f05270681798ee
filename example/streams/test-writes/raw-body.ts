import { PayloadTooLargeException } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';

const MAX_BODY_BYTES = 16 * 1024 * 1024;

/**
 * Reads a scratch stream write's body as bytes into `req.body`, before Nest's JSON parser would
 * parse (and, for a bare JSON string or number, refuse) it: appends are stored byte for byte.
 * `_body` tells the body parsers the request is already read.
 */
export function rawStreamBody(req: Request, _res: Response, next: NextFunction): void {
  if (req.method !== 'PUT' && req.method !== 'POST') return next();
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) {
      req.removeAllListeners('data');
      next(new PayloadTooLargeException(`a write is at most ${MAX_BODY_BYTES} bytes`));
      req.resume();
      return;
    }
    chunks.push(chunk);
  });
  req.on('end', () => {
    if (size > MAX_BODY_BYTES) return;
    (req as Request & { _body?: boolean })._body = true;
    req.body = Buffer.concat(chunks);
    next();
  });
  req.on('error', next);
}
