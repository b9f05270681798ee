import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';

/**
 * How a bench child's TypeScript is loaded; the measured process pays for its loader, so each
 * bench picks the cheapest that fits:
 * - `ts-node`: `-r ts-node/register/transpile-only`. ts-node loads Node's `domain` module, which
 *   makes every EventEmitter construction and emit in the process slower.
 * - `transpile`: a require hook that transpiles each .ts file with TypeScript's transpileModule
 *   as it loads (what ts-node --transpile-only does, without `domain`); the compiler stays loaded.
 * - `compiled`: src/ and bench/lib/ transpiled once to plain JavaScript under node_modules/.cache,
 *   run like a deployed app: no compiler in the process (~35 MB of heap, and RSS that keeps
 *   shrinking for seconds after start-up), for benches that measure a few KB per request.
 */
export type Loader = 'ts-node' | 'transpile' | 'compiled';

const ROOT = join(__dirname, '..', '..');
const made: string[] = [];
let hookFile: string | null = null;
let compiledDir: string | null = null;

function removeOnExit(path: string): void {
  if (made.length === 0) {
    process.once('exit', () => made.forEach((p) => rmSync(p, { recursive: true, force: true })));
  }
  made.push(path);
}

/** The node flags and entry file that run `file` (a .ts path) with `loader`. */
export function loaderArgs(
  loader: Loader,
  file: string,
): { file: string; execArgv: string[]; env?: Record<string, string> } {
  if (loader === 'ts-node') {
    const env = { TS_NODE_TRANSPILE_ONLY: '1' };
    return { file, execArgv: ['-r', 'ts-node/register/transpile-only'], env };
  }
  if (loader === 'transpile') return { file, execArgv: ['-r', transpileHook()] };
  const dir = compileOnce();
  return { file: join(dir, relative(ROOT, file)).replace(/\.ts$/, '.js'), execArgv: [] };
}

function transpileHook(): string {
  if (hookFile) return hookFile;
  hookFile = join(tmpdir(), `bench-transpile-hook-${process.pid}.js`);
  const typescript = JSON.stringify(require.resolve('typescript'));
  writeFileSync(
    hookFile,
    `const ts = require(${typescript});
const fs = require('fs');
const compilerOptions = {
  module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true,
  experimentalDecorators: true, emitDecoratorMetadata: true,
};
require.extensions['.ts'] = function (module, filename) {
  const { outputText } = ts.transpileModule(fs.readFileSync(filename, 'utf8'), { compilerOptions, fileName: filename });
  module._compile(outputText, filename);
};
`,
  );
  removeOnExit(hookFile);
  return hookFile;
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return tsFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

/**
 * src/ and bench/lib/ with tsconfig.json's options, one file at a time, under node_modules/.cache
 * so that `require` of packages still resolves to the repository's node_modules.
 */
function compileOnce(): string {
  if (compiledDir) return compiledDir;
  // Loaded here only: the other loaders' parents need no compiler of their own.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const ts = require('typescript') as typeof import('typescript');
  const config = ts.readConfigFile(join(ROOT, 'tsconfig.json'), ts.sys.readFile);
  const { options } = ts.parseJsonConfigFileContent(config.config, ts.sys, ROOT);
  const compilerOptions = { ...options, sourceMap: false, declaration: false, noEmit: false };
  const dir = join(
    ROOT,
    'node_modules',
    '.cache',
    'nestjs-polling-bench',
    `children-${process.pid}`,
  );
  rmSync(dir, { recursive: true, force: true });
  for (const file of [...tsFiles(join(ROOT, 'src')), ...tsFiles(join(ROOT, 'bench', 'lib'))]) {
    const { outputText } = ts.transpileModule(readFileSync(file, 'utf8'), {
      compilerOptions,
      fileName: file,
    });
    const out = join(dir, relative(ROOT, file)).replace(/\.ts$/, '.js');
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, outputText);
  }
  removeOnExit(dir);
  compiledDir = dir;
  return dir;
}
