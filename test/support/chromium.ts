import { existsSync } from 'node:fs';
import { installDebianPackage } from './debian-package';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

/**
 * A Chromium for browser tests: CHROMIUM_PATH, a Debian install, or — as root with apt — one it
 * installs itself. Null (with the reason) where none can be had.
 */
export function findOrInstallChromium(): { path: string } | { missing: string } {
  const configured = process.env.CHROMIUM_PATH;
  if (configured)
    return existsSync(configured)
      ? { path: configured }
      : { missing: `CHROMIUM_PATH=${configured} does not exist` };
  const found = CANDIDATES.find((p) => existsSync(p));
  if (found) return { path: found };
  const failed = installDebianPackage('chromium');
  if (failed)
    return { missing: `no Chromium found and ${failed}: install it or set CHROMIUM_PATH` };
  const installed = CANDIDATES.find((p) => existsSync(p));
  return installed
    ? { path: installed }
    : { missing: 'apt-get installed chromium but no binary was found' };
}

/** Flags for a headless Chromium on a machine without outside network. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
