import { existsSync } from 'node:fs';
import { missingSystemTool } from './system-tools';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

/** The Chromium for browser tests: CHROMIUM_PATH, else a system install. Throws when there is none. */
export function chromiumPath(): string {
  const configured = process.env.CHROMIUM_PATH;
  if (configured) {
    if (existsSync(configured)) return configured;
    throw missingSystemTool(`CHROMIUM_PATH=${configured} does not exist`);
  }
  const found = CANDIDATES.find((path) => existsSync(path));
  if (!found) throw missingSystemTool(`no Chromium at ${CANDIDATES.join(', ')}`);
  return found;
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
