import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import ts from 'typescript';

const ROOT = join(__dirname, '..', '..');

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return tsFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

/**
 * The held-polls children run as plain JavaScript, like a deployed app: under ts-node every
 * process would also carry the TypeScript compiler (~35 MB of heap, and RSS that keeps shrinking
 * for seconds after start-up), which swamps an RSS difference of a few KB per held poll. This
 * transpiles src/ and the bench's own child files (tsconfig.json's options, one file at a time as
 * ts-node --transpile-only does) under node_modules/.cache, so that `require` of packages still
 * resolves to the repository's node_modules. Returns the directory and a function that removes it.
 */
export function buildChildren(files: string[]): { dir: string; remove(): void } {
  const config = ts.readConfigFile(join(ROOT, 'tsconfig.json'), ts.sys.readFile);
  const { options } = ts.parseJsonConfigFileContent(config.config, ts.sys, ROOT);
  const compilerOptions: ts.CompilerOptions = {
    ...options,
    sourceMap: false,
    declaration: false,
    noEmit: false,
  };
  const dir = join(
    ROOT,
    'node_modules',
    '.cache',
    'nestjs-polling-bench',
    `held-polls-${process.pid}`,
  );
  rmSync(dir, { recursive: true, force: true });
  for (const file of [...tsFiles(join(ROOT, 'src')), ...files]) {
    const { outputText } = ts.transpileModule(readFileSync(file, 'utf8'), {
      compilerOptions,
      fileName: file,
    });
    const out = join(dir, relative(ROOT, file)).replace(/\.ts$/, '.js');
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, outputText);
  }
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
