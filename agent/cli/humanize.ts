/** Numbers and times as an operator reads them in the `weft` tables; also Ctrl-C handling for streams. */

/** 1536 → "1.5 KiB". */
export function bytes(n: number): string {
  if (!Number.isFinite(n)) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** 192_000 → "3m12s"; 900 → "900ms"; two units at most. */
export function duration(ms: number): string {
  if (!Number.isFinite(ms)) return "-";
  const neg = ms < 0 ? "-" : "";
  const a = Math.abs(ms);
  if (a < 1000) return `${neg}${Math.round(a)}ms`;
  const s = Math.floor(a / 1000);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (d > 0) return `${neg}${d}d${h ? `${h}h` : ""}`;
  if (h > 0) return `${neg}${h}h${m ? `${m}m` : ""}`;
  if (m > 0) return `${neg}${m}m${sec ? `${sec}s` : ""}`;
  return `${neg}${sec}s`;
}

/** An ISO time relative to now: "in 11h32m" or "3m ago". */
export function relative(iso: string | undefined, now = Date.now()): string {
  if (!iso) return "-";
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const d = t - now;
  return d >= 0 ? `in ${duration(d)}` : `${duration(-d)} ago`;
}

/** A list, shortened to `max` items with "+N more". */
export function list(items: readonly string[], max = 3, empty = "-"): string {
  if (items.length === 0) return empty;
  return items.length <= max ? items.join(",") : `${items.slice(0, max).join(",")} +${items.length - max} more`;
}

/** Ctrl-C (or SIGTERM) for a long-running command: an AbortSignal, and which signal stopped it. */
export interface Interrupt {
  readonly signal: AbortSignal;
  /** The signal received, if any. */
  readonly received: NodeJS.Signals | undefined;
  /** Removes the handlers (the default behaviour returns). */
  dispose(): void;
}

/**
 * Catches the first SIGINT/SIGTERM so a stream can stop cleanly (a second one exits at once), and
 * treats a closed stdout (`weft tap | head`) the same way rather than dying on EPIPE.
 */
export function interruptible(): Interrupt {
  const ctl = new AbortController();
  let received: NodeJS.Signals | undefined;
  const on = (sig: NodeJS.Signals) => {
    if (received) process.exit(130);
    received = sig;
    ctl.abort();
  };
  const onStdoutError = (e: NodeJS.ErrnoException) => {
    if (e.code !== "EPIPE") throw e;
    ctl.abort();
  };
  process.on("SIGINT", on);
  process.on("SIGTERM", on);
  process.stdout.on("error", onStdoutError);
  return {
    signal: ctl.signal,
    get received() {
      return received;
    },
    dispose() {
      process.off("SIGINT", on);
      process.off("SIGTERM", on);
      process.stdout.off("error", onStdoutError);
    },
  };
}
