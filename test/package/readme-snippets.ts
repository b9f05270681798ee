/** A TypeScript block of a Markdown file, and where it goes in a scratch app. */
export interface Snippet {
  /** 1-based line of the block's first code line in the Markdown file. */
  line: number;
  /** Path in the scratch app: the block's own `// src/....ts` first line, else a generated one. */
  file: string;
  code: string;
}

const FENCE = /^```(\w*)[^\n]*\n([\s\S]*?)^```/gm;
/** A block that starts with `// src/app.module.ts` is that file of the app it describes. */
const NAMED_FILE = /^\/\/ (src\/[\w./-]+\.ts)(?:[\s:]|$)/;

/**
 * Every ```ts / ```typescript block of `markdown`, in order. Unnamed blocks go to
 * `src/readme-snippet-<n>.ts`, beside the named ones, so their relative imports resolve alike.
 */
export function typeScriptSnippets(markdown: string): Snippet[] {
  const snippets: Snippet[] = [];
  for (const match of markdown.matchAll(FENCE)) {
    const [, language, code] = match;
    if (language !== 'ts' && language !== 'typescript') continue;
    const line = markdown.slice(0, match.index).split('\n').length + 1;
    const named = NAMED_FILE.exec(code);
    const file = named ? named[1] : `src/readme-snippet-${snippets.length + 1}.ts`;
    snippets.push({ line, file, code });
  }
  return snippets;
}

/**
 * tsc's `src/x.ts(12,5): error ...` lines rewritten to the README line they come from, so a
 * failure points at the block to fix.
 */
export function toReadmeLines(tscOutput: string, snippets: Snippet[]): string {
  const start = new Map(snippets.map((s) => [s.file, s.line]));
  return tscOutput.replace(/^(src\/[\w./-]+\.ts)\((\d+),(\d+)\)/gm, (whole, file, row, col) => {
    const line = start.get(file);
    return line === undefined ? whole : `README.md:${line + Number(row) - 1}:${col} (${file})`;
  });
}
