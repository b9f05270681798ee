/**
 * Remembers roughly when each index position was written (at most one mark per second), so the
 * leader can trim the index to the same retention as the change log. Marks live in the leader's
 * memory: after a takeover, trimming resumes once the new leader has seen a retention period.
 */
export class IndexRetention {
  private marks: { at: number; position: number }[] = [];

  constructor(
    private readonly maxAgeMs: number | null,
    private readonly maxRows: number | null,
  ) {}

  record(position: number, now = Date.now()): void {
    const last = this.marks[this.marks.length - 1];
    if (last && now - last.at < 1000) last.position = position;
    else this.marks.push({ at: now, position });
  }

  reset(): void {
    this.marks = [];
  }

  /** The highest position that is past retention (0 when nothing is). */
  floor(head: number, now = Date.now()): number {
    let floor = 0;
    if (this.maxRows !== null) floor = Math.max(floor, head - this.maxRows);
    if (this.maxAgeMs !== null) {
      const cutoff = now - this.maxAgeMs;
      let expired = 0;
      while (expired < this.marks.length && this.marks[expired].at < cutoff) expired++;
      if (expired > 0) {
        floor = Math.max(floor, this.marks[expired - 1].position);
        this.marks.splice(0, expired);
      }
    }
    return floor;
  }
}
