/** Installs the Debian packages the suites use; tests never install anything themselves. */
export const INSTALL_SCRIPT = 'scripts/install-system-packages.sh';

/** The error a suite fails with when a tool it needs is not on the machine. */
export function missingSystemTool(what: string): Error {
  return new Error(`${what}: run \`bash ${INSTALL_SCRIPT}\` as root to install what the tests use`);
}
