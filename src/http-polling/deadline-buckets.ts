/** Something parked until a deadline. */
export interface Expiring {
  /** Called once when its bucket's deadline passes (unless it left the bucket before). */
  expire(): void;
}

/** Longest timer Node runs as asked; anything longer fires after 1 ms (DESIGN.md §4). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Deadlines grouped into buckets of `widthMs`, one timer per bucket rather than one per held
 * request: 10,000 waiters opened within a second cost ~10 timers. A deadline is rounded up to its
 * bucket's end, so a wait lasts at most `widthMs` longer than asked, never shorter.
 */
export class DeadlineBuckets<T extends Expiring> {
  private readonly buckets = new Map<number, { members: Set<T>; timer: NodeJS.Timeout }>();

  constructor(private readonly widthMs = 100) {}

  /** Timers running now (one per bucket with a member). */
  get timers(): number {
    return this.buckets.size;
  }

  /** Parks `member` until `ms` from now; returns its bucket, for `remove`. */
  add(member: T, ms: number): number {
    const now = Date.now();
    const width = this.widthMs;
    const end = Math.ceil((now + Math.min(Math.max(0, ms), MAX_TIMER_MS - width)) / width) * width;
    let bucket = this.buckets.get(end);
    if (!bucket) {
      bucket = { members: new Set(), timer: setTimeout(() => this.fire(end), end - now) };
      this.buckets.set(end, bucket);
    }
    bucket.members.add(member);
    return end;
  }

  remove(member: T, end: number): void {
    const bucket = this.buckets.get(end);
    if (!bucket?.members.delete(member) || bucket.members.size > 0) return;
    clearTimeout(bucket.timer);
    this.buckets.delete(end);
  }

  private fire(end: number): void {
    const bucket = this.buckets.get(end);
    this.buckets.delete(end);
    if (bucket) for (const member of bucket.members) member.expire();
  }
}
