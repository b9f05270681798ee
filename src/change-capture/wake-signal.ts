/** A sleep that ends early when something calls wake(): NOTIFY, an error, or stop. */
export class WakeSignal {
  private woken = false;
  private release: (() => void) | null = null;

  wake(): void {
    this.woken = true;
    this.release?.();
  }

  /** True once if a wake arrived since the last call (the flag is consumed). */
  take(): boolean {
    const was = this.woken;
    this.woken = false;
    return was;
  }

  /** Resolves after `ms`, or at once / as soon as wake() is called. Does not consume the flag. */
  sleep(ms: number): Promise<void> {
    if (this.woken) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.release = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.release = done;
    });
  }
}
