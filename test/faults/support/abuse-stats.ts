import { readFileSync } from 'node:fs';

const MB = 1024 * 1024;

/** Counts of what came back: an HTTP status, or a word such as `reset` when none did. */
export class Tally {
  private readonly counts = new Map<string, number>();

  /** The tally of `toJSON()` (e.g. sent from another process). */
  static from(counts: Record<string, number>): Tally {
    const tally = new Tally();
    for (const [outcome, n] of Object.entries(counts)) tally.add(outcome, n);
    return tally;
  }

  toJSON(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }

  add(outcome: number | string, times = 1): void {
    const key = String(outcome);
    this.counts.set(key, (this.counts.get(key) ?? 0) + times);
  }

  get(outcome: number | string): number {
    return this.counts.get(String(outcome)) ?? 0;
  }

  get total(): number {
    return [...this.counts.values()].reduce((sum, n) => sum + n, 0);
  }

  outcomes(): string[] {
    return [...this.counts.keys()].sort();
  }

  /** Outcomes that are a 5xx status. */
  serverErrors(): string[] {
    return this.outcomes().filter((outcome) => /^5\d\d$/.test(outcome));
  }

  toString(): string {
    return this.outcomes()
      .map((outcome) => `${outcome}×${this.get(outcome)}`)
      .join(' ');
  }
}

/** Nearest-rank percentile (p in 0..100) of `values`; 0 for none. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** The process's resident set (VmRSS) in MB, from /proc (Linux). */
export function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!kb) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return (Number(kb[1]) * 1024) / MB;
}

// Preloaded into the example process: on SIGWINCH it collects garbage and prints its heap, so a
// phase's left-over memory is measured without the high-water marks that RSS keeps (V8, malloc).
// Not SIGUSR2: Nest's enableShutdownHooks() closes the app on it. SIGWINCH is ignored by default.
const HEAP_PROBE = [
  'let n=0;',
  "process.on('SIGWINCH',()=>{",
  'gc();',
  'const{heapUsed,external}=process.memoryUsage();',
  "console.log('heap-after-gc:'+(++n)+':'+heapUsed+':'+external)",
  '})',
].join('');

/** NODE_OPTIONS for the example process that install the heap probe. */
export const HEAP_PROBE_OPTIONS = `--expose-gc --import=data:text/javascript,${encodeURIComponent(HEAP_PROBE)}`;

export interface HeapReading {
  /** V8 heap in use after a full collection (MB). */
  heapMb: number;
  /** Memory of Buffers and other objects outside the V8 heap (MB). */
  externalMb: number;
}

/**
 * Asks the heap probe of process `pid` for reading number `seq` (1, 2, ...) and waits for the line
 * in its output.
 */
export async function heapAfterGc(
  pid: number,
  seq: number,
  output: () => string,
  timeoutMs = 5000,
): Promise<HeapReading> {
  process.kill(pid, 'SIGWINCH');
  const pattern = new RegExp(`heap-after-gc:${seq}:(\\d+):(\\d+)`);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const match = pattern.exec(output());
    if (match) return { heapMb: Number(match[1]) / MB, externalMb: Number(match[2]) / MB };
    if (Date.now() > deadline) throw new Error(`no heap reading ${seq} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Label sets of a metric's samples, e.g. `{feed="messages",kind="long",status="200"}`. */
export function metricLabels(text: string, name: string): string[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith(`${name}{`))
    .map((line) => line.slice(name.length, line.indexOf('}') + 1));
}

export interface PhaseRow {
  phase: string;
  abuserRequests: number;
  abuserStatuses: string;
  otherRequests: number;
  otherP99Ms: number;
  /** The bound the phase held the other client's p99 to (relative to the run's baseline). */
  otherBoundMs: number;
  rssMb: number;
  heapMb: number;
  externalMb: number;
}

/** One fixed-width table of the phases, for the test log. */
export function formatTable(rows: PhaseRow[]): string {
  const header = [
    'phase',
    'abuser reqs',
    'abuser statuses',
    'other reqs',
    'other p99 ms',
    'bound ms',
    'RSS MB',
    'heap+external MB after GC',
  ];
  const cells = rows.map((r) => [
    r.phase,
    String(r.abuserRequests),
    r.abuserStatuses || '-',
    String(r.otherRequests),
    r.otherP99Ms.toFixed(1),
    r.otherBoundMs.toFixed(0),
    r.rssMb.toFixed(1),
    `${r.heapMb.toFixed(1)}+${r.externalMb.toFixed(1)}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) => c.map((cell, i) => cell.padEnd(widths[i])).join(' | ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('-|-'), ...cells.map(line)].join(
    '\n',
  );
}
