import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { installScratchApp, packLibrary, ROOT, run } from './scratch-app';
import { toReadmeLines, typeScriptSnippets } from './readme-snippets';

/*
 * Every TypeScript block of README.md, type-checked in strict mode against the packed library
 * installed in a new app, the way a reader would paste them: `nestjs-polling` and
 * `nestjs-polling/client` resolve to the tarball. A block that names its file
 * (`// src/app.module.ts`) is that file, so the quick start's files import each other.
 */

const TSCONFIG = {
  compilerOptions: {
    module: 'commonjs',
    moduleResolution: 'node10',
    target: 'ES2022',
    // The client blocks run in a page as well as in Node.
    lib: ['ES2022', 'DOM', 'DOM.Iterable'],
    strict: true,
    noEmit: true,
    skipLibCheck: false,
    experimentalDecorators: true,
    emitDecoratorMetadata: true,
    esModuleInterop: true,
    types: ['node'],
  },
  include: ['src'],
};

const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const snippets = typeScriptSnippets(README);

describe('README.md TypeScript blocks', () => {
  let packDir: string;
  let tarball: string;
  let app: string;

  beforeAll(async () => {
    ({ dir: packDir, tarball } = await packLibrary());
    app = mkdtempSync(join(tmpdir(), 'polling-readme-'));
  }, 120_000);

  afterAll(() => {
    for (const dir of [packDir, app]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('are found: the quick start and the rest, each in a file of its own', () => {
    expect(snippets.length).toBeGreaterThanOrEqual(8);
    const files = snippets.map((s) => s.file);
    expect(new Set(files).size).toBe(files.length);
    expect(files).toEqual(expect.arrayContaining(['src/app.module.ts', 'src/main.ts']));
  });

  it('compile in strict mode against the packed library', async () => {
    // `export {}`: a block without imports is still a module, so blocks never share globals.
    const files = Object.fromEntries(snippets.map((s) => [s.file, `${s.code}\nexport {};\n`]));
    await installScratchApp(app, tarball, {
      'tsconfig.json': JSON.stringify(TSCONFIG, null, 2),
      ...files,
    });
    const tsc = join(app, 'node_modules', 'typescript', 'bin', 'tsc');
    const errors = await run('node', [tsc, '-p', '.'], { cwd: app }).then(
      () => '',
      (error: { stdout: string }) => toReadmeLines(error.stdout, snippets),
    );
    expect(errors).toBe('');
  }, 120_000);
});
