/** Must match the module's `schema` option; read at run time so one class serves every app. */
export function pollingSchema(): string {
  return process.env.POLLING_SCHEMA ?? 'public';
}
