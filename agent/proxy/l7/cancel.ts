/**
 * A cancellation flag for one request: "the client went away". Not AbortController: Node's
 * EventTarget-based signals cost a few microseconds each and weigh on every young-generation
 * collection, and the proxy makes one per request.
 */
import type { SleepSignal } from "../../../common/sleep.js";

/** What waiting code listens to (AbortSignal has the same shape, so either may be passed). */
export type CancelSignal = SleepSignal;

/** A cancellation source and its signal in one object. */
export class Cancel implements CancelSignal {
  aborted = false;
  private fns: (() => void)[] | undefined;

  /** Registers fn for the cancellation (called at most once). */
  addEventListener(_type: "abort", fn: () => void): void {
    if (this.aborted) return;
    if (this.fns) this.fns.push(fn);
    else this.fns = [fn];
  }

  /** Forgets fn. */
  removeEventListener(_type: "abort", fn: () => void): void {
    const fns = this.fns;
    if (!fns) return;
    const i = fns.indexOf(fn);
    if (i >= 0) fns.splice(i, 1);
  }

  /** Cancels: every registered function runs once. */
  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    const fns = this.fns;
    this.fns = undefined;
    if (fns) for (const fn of fns) fn();
  }
}
