/** A configuration mistake, found at start-up (options, routes, missing optional peers). */
export class PollingConfigError extends Error {
  constructor(message: string) {
    super(`nestjs-polling: ${message}`);
    this.name = 'PollingConfigError';
  }
}
