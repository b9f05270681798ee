import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Installs the Debian packages the suites use; tests never install anything themselves. */
export const INSTALL_SCRIPT = 'scripts/install-system-packages.sh';

/** The error a suite fails with when a tool it needs is not on the machine. */
export function missingSystemTool(what: string): Error {
  return new Error(`${what}: run \`bash ${INSTALL_SCRIPT}\` as root to install what the tests use`);
}

/** `command`, which the test is about to run, is on the PATH; else fails naming the script. */
export function requireCommand(command: string): string {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  if (!dirs.some((dir) => existsSync(join(dir, command)))) {
    throw missingSystemTool(`\`${command}\` is not installed`);
  }
  return command;
}
