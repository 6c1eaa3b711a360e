/**
 * Exponential backoff with jitter: each delay is a random point in the upper half of the
 * doubling window, so a fleet of agents cut off together does not reconnect together.
 */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly initialMs: number,
    private readonly maxMs: number,
    private readonly random: () => number = Math.random,
  ) {}

  /** The next delay, growing up to the maximum. */
  next(): number {
    const window = Math.min(this.maxMs, this.initialMs * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 30);
    return Math.round(window / 2 + (this.random() * window) / 2);
  }

  /** Starts over (after a connection that worked). */
  reset(): void {
    this.attempt = 0;
  }

  /** Attempts since the last reset. */
  get attempts(): number {
    return this.attempt;
  }
}
