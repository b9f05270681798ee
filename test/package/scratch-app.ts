import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

export const run = promisify(execFile);
export const ROOT = resolve(__dirname, '..', '..');

/**
 * What a new Nest app has besides the library: linked from this repository's node_modules so the
 * install works offline. Deliberately absent: ioredis, @types/pg, prom-client, @nestjs/terminus,
 * @nestjs/swagger (the optional peers, whose types must not leak into the library's .d.ts).
 */
const HOST_PACKAGES = [
  '@nestjs/common',
  '@nestjs/core',
  '@nestjs/platform-express',
  '@types/express',
  '@types/node',
  'pg',
  'reflect-metadata',
  'rxjs',
  'typeorm',
  'typescript',
];

/** `npm pack` of this repository (prepack builds it) into a fresh temp dir; the tarball's path. */
export async function packLibrary(): Promise<{ dir: string; tarball: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'polling-pack-'));
  await run('npm', ['pack', '--pack-destination', dir], { cwd: ROOT, maxBuffer: 1 << 24 });
  const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'));
  if (!tarball) throw new Error(`npm pack left no tarball in ${dir}`);
  return { dir, tarball: join(dir, tarball) };
}

/** A scratch app in `dir` that depends on the tarball, installed with npm (offline-capable). */
export async function installScratchApp(
  dir: string,
  tarball: string,
  files: Record<string, string>,
): Promise<void> {
  const dependencies: Record<string, string> = { 'nestjs-polling': `file:${tarball}` };
  for (const name of HOST_PACKAGES) dependencies[name] = `file:${join(ROOT, 'node_modules', name)}`;
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: 'scratch-app', private: true, dependencies }, null, 2),
  );
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  // --legacy-peer-deps: the peers are the linked packages above, nothing is fetched for them.
  await run(
    'npm',
    ['install', '--no-audit', '--no-fund', '--prefer-offline', '--legacy-peer-deps'],
    { cwd: dir, maxBuffer: 1 << 24 },
  );
}
