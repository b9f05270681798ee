/** Bin width of the latency histograms. */
export const BIN_MS = 0.1;
/** Values at or above this land in the last bin (its count is reported as `over`). */
const RANGE_MS = 10_000;
const BINS = Math.ceil(RANGE_MS / BIN_MS) + 1;

/** A latency histogram with 0.1 ms bins that processes can send each other and merge. */
export interface Histogram {
  counts: Uint32Array;
  count: number;
  sum: number;
  max: number;
  /** Values below 0 (clock noise: the client saw the change before the writer saw its ack). */
  negative: number;
  /** Smallest value seen (may be negative). */
  min: number;
}

export function histogram(): Histogram {
  return {
    counts: new Uint32Array(BINS),
    count: 0,
    sum: 0,
    max: -Infinity,
    negative: 0,
    min: Infinity,
  };
}

export function record(h: Histogram, ms: number): void {
  if (ms < 0) h.negative++;
  const bin = Math.min(BINS - 1, Math.max(0, Math.floor(ms / BIN_MS)));
  h.counts[bin]++;
  h.count++;
  h.sum += ms;
  if (ms > h.max) h.max = ms;
  if (ms < h.min) h.min = ms;
}

export function merge(into: Histogram, from: Histogram): void {
  for (let i = 0; i < BINS; i++) into.counts[i] += from.counts[i];
  into.count += from.count;
  into.sum += from.sum;
  into.max = Math.max(into.max, from.max);
  into.min = Math.min(into.min, from.min);
  into.negative += from.negative;
}

/** The q-quantile (0..1), as the upper edge of its bin (so at most 0.1 ms high). */
export function quantile(h: Histogram, q: number): number {
  if (h.count === 0) return NaN;
  const rank = Math.max(1, Math.ceil(q * h.count));
  let seen = 0;
  for (let i = 0; i < BINS; i++) {
    seen += h.counts[i];
    if (seen >= rank) return Math.min((i + 1) * BIN_MS, h.max);
  }
  return h.max;
}

export function summary(h: Histogram): {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
  negative: number;
} {
  return {
    count: h.count,
    p50: round(quantile(h, 0.5)),
    p90: round(quantile(h, 0.9)),
    p99: round(quantile(h, 0.99)),
    max: round(h.max),
    mean: round(h.count ? h.sum / h.count : NaN),
    negative: h.negative,
  };
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
