import { PollingConfigError } from './polling-config.error';

/** Schema and channel names are baked into generated SQL, so they are checked, never taken raw. */
const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

export function assertSchemaName(schema: string): string {
  if (!IDENTIFIER.test(schema)) {
    throw new PollingConfigError(
      `schema name "${schema}" is invalid; use lower-case letters, digits and _`,
    );
  }
  return schema;
}
