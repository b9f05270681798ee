/** One line of the bench table; every bench module returns these. */
export interface BenchRow {
  bench: string;
  row: string;
  clients: number;
  medianTps: number;
  minTps: number;
  maxTps: number;
  /** Median tps of this row divided by the median of the plain baseline at the same client count. */
  ratioVsPlain: number;
  samples: number[];
  /** Bench-specific measurements behind the row (kept in the JSON output). */
  details?: Record<string, unknown>;
}

export interface BenchResult {
  rows: BenchRow[];
  /** Caveats and goal checks printed under the table. */
  notes: string[];
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const HEADERS = ['row', 'clients', 'median tps', 'min–max', 'ratio vs plain'];

export function formatTable(rows: BenchRow[]): string {
  const cells = rows.map((r) => [
    r.row,
    String(r.clients),
    Math.round(r.medianTps).toString(),
    `${Math.round(r.minTps)}–${Math.round(r.maxTps)}`,
    `${r.ratioVsPlain.toFixed(2)}×`,
  ]);
  const widths = HEADERS.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  // Text left, numbers right.
  const line = (c: string[]) =>
    c.map((v, i) => (i === 0 ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join(' | ');
  return [line(HEADERS), widths.map((w) => '-'.repeat(w)).join('-|-'), ...cells.map(line)].join(
    '\n',
  );
}
