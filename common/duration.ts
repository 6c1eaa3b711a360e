/** Durations as people write them ("1.5s", "100ms", "1h30m"), in milliseconds. */
import { ConfigError } from "./errors.js";

/**
 * A duration as Istio (protobuf JSON: "1.5s", "100ms"-style also accepted) or Gateway API
 * (GEP-2257: "1h30m", "500ms") writes it, in milliseconds; null when it is not one.
 */
export function durationMs(text: string): number | null {
  const t = text.trim();
  if (t === "0" || t === "0s") return 0;
  const re = /(\d+(?:\.\d+)?)(h|ms|m|s)/gy;
  let total = 0;
  let matched = 0;
  for (let m = re.exec(t); m !== null; m = re.exec(t)) {
    const n = Number(m[1]);
    total += m[2] === "h" ? n * 3_600_000 : m[2] === "m" ? n * 60_000 : m[2] === "s" ? n * 1000 : n;
    matched = re.lastIndex;
  }
  if (matched === 0 || matched !== t.length) return null;
  return Math.round(total);
}

/** A command-line duration flag in milliseconds: fallback when absent, errors naming the flag. */
export function durationFlag(flag: string, text: string | undefined, fallback: number, min = 0): number {
  if (text === undefined) return fallback;
  const ms = durationMs(text);
  if (ms === null) throw new ConfigError(`${flag} '${text}': expected a duration such as 100ms, 30s, 24h`);
  if (ms < min) throw new ConfigError(`${flag} '${text}': must be at least ${min} ms`);
  return ms;
}
