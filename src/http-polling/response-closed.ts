import type { ServerResponse } from 'node:http';
import type { ClosedSignal } from './held-requests.service';

/**
 * A (Node) response as the core's ClosedSignal: closed once the client left or the answer was sent.
 * `res.on('close')`, not `req.on('close')` (DESIGN.md §4). A class, not an object of closures:
 * every held request has one.
 */
class ResponseClosed implements ClosedSignal {
  constructor(private readonly res: ServerResponse) {}

  get closed(): boolean {
    return this.res.destroyed || this.res.writableEnded;
  }

  onClose(listener: () => void): void {
    // `on`, not `once`: `once` wraps every listener in a bound function of its own.
    this.res.on('close', listener);
  }

  offClose(listener: () => void): void {
    this.res.off('close', listener);
  }
}

export function responseClosed(res: ServerResponse): ClosedSignal {
  return new ResponseClosed(res);
}
