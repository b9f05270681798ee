/**
 * Diagnostics for bench/README.md: what a held poll is made of. Compares two V8 heap snapshots
 * (BENCH_HELD_HEAP_DIR of bench/scenarios/held-polls.ts writes `<kind>-idle` and `<kind>-held-<N>`) and
 * prints, per constructor (closures by function name), the objects and self bytes added per held
 * request, largest first.
 *
 *   npx ts-node bench/lib/heap-diff.ts dir/app-idle.heapsnapshot dir/app-held-10000.heapsnapshot 10000
 *
 * HEAP_DIFF_SITES=1 names closures by where their function is defined (file:line).
 */
import { readFileSync } from 'node:fs';

interface Snapshot {
  snapshot: {
    meta: {
      node_fields: string[];
      node_types: [string[]];
      edge_fields: string[];
      edge_types: [string[]];
      location_fields: string[];
    };
  };
  nodes: number[];
  edges: number[];
  strings: string[];
  locations: number[];
}

/** Where each closure's function is defined: `file:line` (from the snapshot's locations). */
function closureSites(snap: Snapshot): Map<number, string> {
  const meta = snap.snapshot.meta;
  const width = meta.node_fields.length;
  const edgeWidth = meta.edge_fields.length;
  const [countAt, nameAt] = ['edge_count', 'name'].map((f) => meta.node_fields.indexOf(f));
  const [edgeTypeAt, edgeNameAt, toAt] = ['type', 'name_or_index', 'to_node'].map((f) =>
    meta.edge_fields.indexOf(f),
  );
  const edgeTypes = meta.edge_types[0];
  // First edge of each node, and the script name each Script node points at.
  const firstEdge = new Int32Array(snap.nodes.length / width + 1);
  for (let n = 0, e = 0; n < snap.nodes.length / width; n++) {
    firstEdge[n] = e;
    e += snap.nodes[n * width + countAt] * edgeWidth;
  }
  const edge = (node: number, name: string): number | null => {
    const n = node / width;
    const end = n + 1 < firstEdge.length ? firstEdge[n + 1] : snap.edges.length;
    for (let e = firstEdge[n]; e < end; e += edgeWidth) {
      const type = edgeTypes[snap.edges[e + edgeTypeAt]];
      if (
        type !== 'element' &&
        type !== 'hidden' &&
        snap.strings[snap.edges[e + edgeNameAt]] === name
      )
        return snap.edges[e + toAt];
    }
    return null;
  };
  const sites = new Map<number, string>();
  const locWidth = meta.location_fields.length;
  const [objAt, scriptAt, lineAt] = ['object_index', 'script_id', 'line'].map((f) =>
    meta.location_fields.indexOf(f),
  );
  const scriptNames = new Map<number, string>();
  for (let i = 0; i < snap.locations.length; i += locWidth) {
    const node = snap.locations[i + objAt];
    const scriptId = snap.locations[i + scriptAt];
    let file = scriptNames.get(scriptId);
    if (file === undefined) {
      const shared = edge(node, 'shared');
      const script = shared === null ? null : edge(shared, 'script');
      const name = script === null ? null : edge(script, 'name');
      file = name === null ? `script ${scriptId}` : snap.strings[snap.nodes[name + nameAt]];
      file = file.split('/').slice(-2).join('/');
      scriptNames.set(scriptId, file);
    }
    sites.set(node, `${file}:${snap.locations[i + lineAt] + 1}`);
  }
  return sites;
}

/** Count and self size per "type:name" of every node in the snapshot. */
function census(file: string): Map<string, { count: number; bytes: number }> {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const width = fields.length;
  const [typeAt, nameAt, sizeAt] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f));
  const sites = process.env.HEAP_DIFF_SITES ? closureSites(snap) : new Map<number, string>();
  const out = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + typeAt]];
    const site = type === 'closure' ? sites.get(i) : undefined;
    const raw =
      type === 'string' || type === 'concatenated string' || type === 'sliced string'
        ? '(string)'
        : type === 'number'
          ? '(number)'
          : snap.strings[snap.nodes[i + nameAt]];
    const key = `${type}:${raw.slice(0, 60)}${site ? ` @ ${site}` : ''}`;
    const entry = out.get(key) ?? { count: 0, bytes: 0 };
    entry.count++;
    entry.bytes += snap.nodes[i + sizeAt];
    out.set(key, entry);
  }
  return out;
}

function main(before: string, after: string, per: number, top = 45): void {
  const a = census(before);
  const b = census(after);
  const rows = [...b].map(([key, v]) => {
    const old = a.get(key) ?? { count: 0, bytes: 0 };
    return { key, count: (v.count - old.count) / per, bytes: (v.bytes - old.bytes) / per };
  });
  rows.sort((x, y) => y.bytes - x.bytes);
  const total = rows.reduce((n, r) => n + r.bytes, 0);
  console.log(`per held request: ${total.toFixed(0)} B of V8 heap (self sizes)`);
  for (const r of rows.slice(0, top)) {
    if (Math.abs(r.count) < 0.05 && Math.abs(r.bytes) < 8) continue;
    console.log(`${r.bytes.toFixed(0).padStart(7)} B ${r.count.toFixed(2).padStart(7)}×  ${r.key}`);
  }
}

const [before, after, per, top] = process.argv.slice(2);
main(before, after, Number(per), top ? Number(top) : undefined);
