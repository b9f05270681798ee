import { toReadmeLines, typeScriptSnippets } from './readme-snippets';

const MARKDOWN = [
  '# Title', // 1
  '```bash', // 2
  'npm i nestjs-polling', // 3
  '```', // 4
  '```ts', // 5
  '// src/app.module.ts', // 6
  'export class AppModule {}', // 7
  '```', // 8
  '```typescript', // 9
  'const x: number = 1;', // 10
  '```', // 11
  '```sql', // 12
  'SELECT 1;', // 13
  '```', // 14
  '```ts', // 15
  '// src/data-source.ts: the DataSource', // 16
  '```', // 17
].join('\n');

describe('typeScriptSnippets', () => {
  const snippets = typeScriptSnippets(MARKDOWN);

  it('takes ts and typescript blocks only, each with the line its code starts on', () => {
    expect(snippets.map((s) => [s.line, s.file])).toEqual([
      [6, 'src/app.module.ts'],
      [10, 'src/readme-snippet-2.ts'],
      [16, 'src/data-source.ts'],
    ]);
    expect(snippets[1].code).toBe('const x: number = 1;\n');
  });

  it("points tsc's errors at README lines", () => {
    const out = "src/readme-snippet-2.ts(1,7): error TS2322: Type 'string' is not assignable";
    expect(toReadmeLines(out, snippets)).toBe(
      "README.md:10:7 (src/readme-snippet-2.ts): error TS2322: Type 'string' is not assignable",
    );
  });
});
