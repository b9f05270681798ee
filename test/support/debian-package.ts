import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/**
 * Installs a Debian package for a test that needs a tool the machine lacks (a fresh CI machine has
 * the npm and Debian registries). Null when installed, else why it could not be.
 */
export function installDebianPackage(name: string): string | null {
  if (process.getuid?.() !== 0 || !existsSync('/usr/bin/apt-get')) {
    return `cannot install Debian "${name}" (needs root and apt-get)`;
  }
  try {
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', name], {
      stdio: 'ignore',
      timeout: 300_000,
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    return null;
  } catch (error) {
    return `installing Debian "${name}" failed: ${(error as Error).message}`;
  }
}
