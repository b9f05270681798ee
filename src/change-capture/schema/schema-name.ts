import { assertSchemaName } from '../../sql-identifier';

// Checked where the options are resolved too, which must not depend on change capture.
export { assertSchemaName };

/** The NOTIFY channel that wakes the change reader of one schema's change log. */
export function wakeChannel(schema: string): string {
  return `polling_wake_${assertSchemaName(schema)}`;
}
