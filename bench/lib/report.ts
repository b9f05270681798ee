/** A measured figure: the median of several runs, with their spread. */
export interface Figure {
  median: number;
  min: number;
  max: number;
  samples: number[];
}

/**
 * One line of the bench table: a figure next to a baseline measured in the same run, their ratio,
 * and the goal for it. Every bench module returns these.
 */
export interface BenchRow {
  bench: string;
  row: string;
  /** Unit of the figure and the baseline: 'tps', 'req/s', 'ms', 'KB', 'changes/s', ... */
  unit: string;
  figure: Figure;
  baseline?: { label: string } & Figure;
  /** figure.median / baseline.median. */
  ratio?: number;
  /** The goal as text, e.g. '≥ 0.80×' or 'p99 < 20 ms'. */
  goal?: string;
  met?: boolean;
  /** Bench-specific measurements behind the row (kept in the JSON output). */
  details?: Record<string, unknown>;
}

export interface BenchResult {
  rows: BenchRow[];
  /** Caveats and goal checks printed under the table. */
  notes: string[];
}

/** What `npm run bench` gives every scenario (bench/run.ts, from the environment). */
export interface BenchSettings {
  /** Server to bench on; a scenario creates a fresh database there and drops it afterwards. */
  serverUrl: string;
  redisUrl: string;
  /** Seconds of load per measured run (BENCH_SECONDS). */
  seconds: number;
  /** Runs per row; rows are medians over them (BENCH_RUNS). */
  runs: number;
  /** Concurrent writers (BENCH_CLIENTS). */
  clients: number[];
  /** Progress lines on stderr. */
  log: (line: string) => void;
}

/** One bench: one file in bench/scenarios/, listed in bench/run.ts. */
export interface Scenario {
  /** Its BENCH_ONLY name. */
  name: string;
  run(settings: BenchSettings): Promise<BenchResult>;
}

export function figureOf(samples: number[]): Figure {
  return { median: median(samples), min: Math.min(...samples), max: Math.max(...samples), samples };
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const HEADERS = ['row', 'median (min–max)', 'baseline, same run', 'ratio', 'goal'];

function amount(value: number, unit: string): string {
  const digits = Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2;
  return `${value.toFixed(digits)} ${unit}`;
}

function spread(f: Figure, unit: string): string {
  return `${amount(f.median, unit)} (${amount(f.min, '').trim()}–${amount(f.max, '').trim()})`;
}

export function formatTable(rows: BenchRow[]): string {
  const cells = rows.map((r) => [
    r.row,
    spread(r.figure, r.unit),
    r.baseline ? `${r.baseline.label}: ${amount(r.baseline.median, r.unit)}` : '',
    r.ratio === undefined ? '' : `${r.ratio.toFixed(2)}×`,
    r.goal ? `${r.goal} ${r.met ? '(met)' : '(NOT met)'}` : '',
  ]);
  const widths = HEADERS.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) =>
    c
      .map((v, i) => v.padEnd(widths[i]))
      .join(' | ')
      .trimEnd();
  return [line(HEADERS), widths.map((w) => '-'.repeat(w)).join('-|-'), ...cells.map(line)].join(
    '\n',
  );
}
