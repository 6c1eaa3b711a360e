/**
 * Coalesces bursts of source changes into one recomputation: it runs `quietMs` after the last
 * change, but never later than `maxDelayMs` after the first, so a steady trickle of changes
 * cannot postpone a push forever.
 */
export class Debouncer {
  private timer: NodeJS.Timeout | undefined;
  private firstAt = 0;

  constructor(
    private readonly quietMs: number,
    private readonly maxDelayMs: number,
    private readonly fn: () => void,
  ) {}

  /** Notes a change. */
  trigger(): void {
    const now = Date.now();
    if (!this.timer) this.firstAt = now;
    else clearTimeout(this.timer);
    const wait = Math.max(0, Math.min(this.quietMs, this.firstAt + this.maxDelayMs - now));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.fn();
    }, wait);
  }

  /** Drops a pending run. */
  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
