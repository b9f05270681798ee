import { createHash } from 'node:crypto';
import { assertSchemaName } from '../../sql-identifier';

// Checked where the options are resolved too, which must not depend on change capture.
export { assertSchemaName };

/** The NOTIFY channel that wakes the change reader of one schema's change log. */
export function wakeChannel(schema: string): string {
  return `polling_wake_${assertSchemaName(schema)}`;
}

/**
 * The name of a capture trigger of one schema's change log. Each change log has its own names, so
 * change logs in several schemas of one database can track the same table side by side (with one
 * name for all, tracking a table in one schema dropped the other's triggers).
 */
export function captureTriggerName(schema: string, op: 'insert' | 'update' | 'delete'): string {
  const tag = createHash('md5').update(assertSchemaName(schema)).digest('hex').slice(0, 8);
  return `polling_capture_${op}_${tag}`;
}
