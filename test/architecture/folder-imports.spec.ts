import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const SRC = resolve(__dirname, '../../src');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return /\.ts$/.test(entry.name) && !/\.spec\.ts$/.test(entry.name) ? [path] : [];
  });
}

/** A capability folder (`http-polling`, `metrics`, ...), or the file itself at the top level. */
function unitOf(file: string): string {
  const parts = relative(SRC, file).split('/');
  return parts.length > 1 ? parts[0] : parts[0].replace(/\.ts$/, '');
}

/** unit → units it imports (type-only imports included: they are dependencies too). */
function importGraph(): Map<string, Set<string>> {
  const graph = new Map<string, Set<string>>();
  for (const file of sources(SRC)) {
    const from = unitOf(file);
    const edges = graph.get(from) ?? new Set<string>();
    graph.set(from, edges);
    for (const [, spec] of readFileSync(file, 'utf8').matchAll(/from '(\.{1,2}\/[^']+)'/g)) {
      const target = resolve(dirname(file), spec.replace(/\.js$/, ''));
      const to = unitOf(`${target}.ts`);
      if (to !== from) edges.add(to);
    }
  }
  return graph;
}

function findCycle(graph: Map<string, Set<string>>): string[] | null {
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (unit: string): string[] | null => {
    if (state.get(unit) === 'done') return null;
    if (state.get(unit) === 'open') return [...path.slice(path.indexOf(unit)), unit];
    state.set(unit, 'open');
    path.push(unit);
    for (const next of graph.get(unit) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    path.pop();
    state.set(unit, 'done');
    return null;
  };
  for (const unit of graph.keys()) {
    const cycle = visit(unit);
    if (cycle) return cycle;
  }
  return null;
}

describe('src folders', () => {
  it('import each other in one direction only (no cycle between folders)', () => {
    expect(findCycle(importGraph())).toBeNull();
  });

  it('metrics observe the hold core: http-polling does not import metrics', () => {
    expect([...(importGraph().get('http-polling') ?? [])]).not.toContain('metrics');
  });

  it('only the platform layer knows the HTTP platform: nothing else imports Express or Fastify', () => {
    const platformDir = join(SRC, 'http-polling', 'platform');
    const offenders = sources(SRC).filter(
      (file) =>
        !file.startsWith(platformDir) &&
        /from '(express|fastify|@nestjs\/platform-[a-z]+|@fastify\/[^']+)'/.test(
          readFileSync(file, 'utf8'),
        ),
    );
    expect(offenders.map((file) => relative(SRC, file))).toEqual([]);
  });
});
