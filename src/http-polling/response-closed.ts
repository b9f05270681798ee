import type { Response } from 'express';
import type { ClosedSignal } from './held-requests.service';

/**
 * A response as the core's ClosedSignal: closed once the client left or the answer was sent.
 * `res.on('close')`, not `req.on('close')` (DESIGN.md §4).
 */
export function responseClosed(res: Response): ClosedSignal {
  return {
    get closed() {
      return res.destroyed || res.writableEnded;
    },
    onClose(listener) {
      res.once('close', listener);
      return () => res.off('close', listener);
    },
  };
}
