import type { Logger } from '@nestjs/common';

/**
 * A warning that may fire per request (or per reconnect attempt) is logged at most once per
 * interval; the next line says how many were left out meanwhile. Keeps an outage from writing one
 * log line per held request.
 */
export class ThrottledWarning {
  private lastAt = -Infinity;
  private suppressed = 0;

  constructor(
    private readonly logger: Pick<Logger, 'warn'>,
    private readonly intervalMs = 10_000,
  ) {}

  warn(message: string): void {
    const now = Date.now();
    if (now - this.lastAt < this.intervalMs) {
      this.suppressed++;
      return;
    }
    const more = this.suppressed > 0 ? ` (${this.suppressed} more since the last report)` : '';
    this.lastAt = now;
    this.suppressed = 0;
    this.logger.warn(`${message}${more}`);
  }
}
