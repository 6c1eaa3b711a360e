/**
 * Reading user YAML (untyped) with errors that name the field. A Fields reader remembers which
 * keys were read, so whatever weft does not understand is reported as unsupported instead of
 * being silently ignored.
 */

import { durationMs } from "../../common/duration.js";

/** The object is invalid at a field; translation skips it and reports this. */
export class InvalidField extends Error {
  override readonly name = "InvalidField";
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`${path}: ${reason}`);
  }
}

/**
 * One object's field problems, collected rather than thrown: `sink` takes notes of unknown fields,
 * `run` turns an InvalidField into a reported error and a fallback, so one bad field does not hide
 * the others.
 */
export function collectFieldErrors(): {
  errors: string[];
  sink: (path: string, note: string) => void;
  run: <T>(fn: () => T, fallback: T) => T;
} {
  const errors: string[] = [];
  return {
    errors,
    sink: (path, note) => {
      errors.push(`${path}: ${note}`);
    },
    run: (fn, fallback) => {
      try {
        return fn();
      } catch (e) {
        if (!(e instanceof InvalidField)) throw e;
        errors.push(e.message);
        return fallback;
      }
    },
  };
}

type Plain = Record<string, unknown>;

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  return typeof v === "object" ? "a mapping" : `${typeof v} ${JSON.stringify(v)}`;
}

/** Edit distance counting a swap of neighbours as one edit ("form" → "from"), for "did you mean" hints. */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number) => (d[i] as number[])[j] as number;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      let v = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, at(i - 2, j - 2) + 1);
      (d[i] as number[])[j] = v;
    }
  }
  return at(a.length, b.length);
}

/** " (did you mean X?)" when an unknown key is close to a known one, else "". */
function didYouMean(key: string, known: Iterable<string>): string {
  let best: string | undefined;
  let bestD = Number.POSITIVE_INFINITY;
  for (const k of known) {
    const d = distance(key.toLowerCase(), k.toLowerCase());
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(best.length / 3)) ? ` (did you mean ${best}?)` : "";
}

/** A reader over one YAML mapping at a path ("spec.http[0]"). */
export class Fields {
  private readonly used = new Set<string>();

  /**
   * strict: keys never read are "unknown field" problems (security objects, where an ignored key
   * could widen access), not "ignored" notes.
   */
  constructor(
    readonly value: Plain,
    readonly path: string,
    private readonly unsupportedSink: (path: string, note: string) => void,
    readonly strict = false,
  ) {}

  /** A reader over a mapping value, or throws naming the path. */
  static of(v: unknown, path: string, sink: (path: string, note: string) => void, strict = false): Fields {
    if (v === null || typeof v !== "object" || Array.isArray(v)) throw new InvalidField(path, `expected a mapping, got ${typeName(v)}`);
    return new Fields(v as Plain, path, sink, strict);
  }

  /** The same mapping, reporting to another sink (problems of one part kept apart). */
  withSink(sink: (path: string, note: string) => void): Fields {
    return new Fields(this.value, this.path, sink, this.strict);
  }

  /** Path of a key under this mapping. */
  at(key: string): string {
    return this.path ? `${this.path}.${key}` : key;
  }

  /** True when the key is present (not null). Does not count as reading it. */
  has(key: string): boolean {
    return this.value[key] !== undefined && this.value[key] !== null;
  }

  private raw(key: string): unknown {
    this.used.add(key);
    const v = this.value[key];
    return v === null ? undefined : v;
  }

  /** A string, or undefined when absent. */
  str(key: string): string | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    if (typeof v !== "string") throw new InvalidField(this.at(key), `expected a string, got ${typeName(v)}`);
    return v;
  }

  /** A required non-empty string. */
  reqStr(key: string): string {
    const v = this.str(key);
    if (v === undefined || v === "") throw new InvalidField(this.at(key), "is required");
    return v;
  }

  /** A number (YAML may quote it), or undefined. */
  num(key: string, min = Number.NEGATIVE_INFINITY, max = Number.POSITIVE_INFINITY): number | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    const n = typeof v === "string" && /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v;
    if (typeof n !== "number" || !Number.isFinite(n)) throw new InvalidField(this.at(key), `expected a number, got ${typeName(v)}`);
    if (n < min || n > max) throw new InvalidField(this.at(key), `${n} is out of range ${min}..${max}`);
    return n;
  }

  /** A whole number, or undefined. */
  int(key: string, min = 0, max = 0xffffffff): number | undefined {
    const n = this.num(key, min, max);
    if (n !== undefined && !Number.isInteger(n)) throw new InvalidField(this.at(key), `${n} is not a whole number`);
    return n;
  }

  /** A boolean, or undefined. */
  bool(key: string): boolean | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    if (typeof v !== "boolean") throw new InvalidField(this.at(key), `expected true or false, got ${typeName(v)}`);
    return v;
  }

  /** A list of strings (absent = []). */
  strList(key: string): string[] {
    const v = this.raw(key);
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw new InvalidField(this.at(key), `expected a list of strings, got ${typeName(v)}`);
    return v.map((item, i) => {
      if (typeof item === "number") return String(item);
      if (typeof item !== "string") throw new InvalidField(`${this.at(key)}[${i}]`, `expected a string, got ${typeName(item)}`);
      return item;
    });
  }

  /** A string → string map (absent = undefined). */
  map(key: string): Record<string, string> | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    if (typeof v !== "object" || Array.isArray(v))
      throw new InvalidField(this.at(key), `expected a mapping of strings, got ${typeName(v)}`);
    const out: Record<string, string> = {};
    for (const [k, val] of Object.entries(v as Plain)) {
      if (typeof val !== "string" && typeof val !== "number" && typeof val !== "boolean") {
        throw new InvalidField(`${this.at(key)}.${k}`, `expected a string, got ${typeName(val)}`);
      }
      out[k] = String(val);
    }
    return out;
  }

  /** A nested mapping reader, or undefined when absent. */
  obj(key: string): Fields | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    return Fields.of(v, this.at(key), this.unsupportedSink, this.strict);
  }

  /** A list of mapping readers (absent = []). */
  list(key: string): Fields[] {
    const v = this.raw(key);
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw new InvalidField(this.at(key), `expected a list, got ${typeName(v)}`);
    return v.map((item, i) => Fields.of(item, `${this.at(key)}[${i}]`, this.unsupportedSink, this.strict));
  }

  /** Marks keys as understood without reading them (accepted, nothing to do). */
  accept(...keys: string[]): void {
    for (const k of keys) this.used.add(k);
  }

  /** Reports a present key as unsupported; returns true when it was present. */
  unsupported(key: string, note = "is not supported and is ignored"): boolean {
    this.used.add(key);
    if (!this.has(key)) return false;
    this.unsupportedSink(this.at(key), note);
    return true;
  }

  /** Reports every key that was never read as unsupported (strict: unknown). Call once, after reading. */
  finish(): void {
    for (const k of Object.keys(this.value)) {
      if (!this.used.has(k) && this.value[k] !== null && this.value[k] !== undefined) {
        const hint = didYouMean(k, this.used);
        this.unsupportedSink(this.at(k), this.strict ? `unknown field${hint}` : `is not a field weft supports; it is ignored${hint}`);
      }
    }
  }
}

/**
 * A duration as Istio (protobuf JSON: "1.5s", "100ms"-style also accepted) or Gateway API
 * (GEP-2257: "1h30m", "500ms") writes it, in milliseconds.
 */
export function parseDuration(text: string, path: string): number {
  const ms = durationMs(text);
  if (ms === null) throw new InvalidField(path, `'${text}' is not a duration (e.g. 1.5s, 100ms, 1h30m)`);
  return ms;
}

/** Optional duration field in milliseconds. */
export function durationField(f: Fields, key: string): number | undefined {
  const v = f.str(key);
  return v === undefined ? undefined : parseDuration(v, f.at(key));
}
