/**
 * Small checking helpers for decoded wire objects: each reads one field, checks its type and
 * range, and throws an Error naming the field's path and what is wrong.
 */
import { isIP } from "node:net";
import { errorMessage } from "../../common/errors.js";

/** A decoded message as a plain record. */
export type Rec = Record<string, unknown>;

/** Throws naming the path. */
export function fail(path: string, message: string): never {
  throw new Error(path ? `${path}: ${message}` : message);
}

function at(path: string, key: string | number): string {
  if (typeof key === "number") return `${path}[${key}]`;
  return path ? `${path}.${key}` : key;
}

/** The value as a record (a message), or throws. */
export function rec(v: unknown, path: string): Rec {
  if (v === null || typeof v !== "object" || Array.isArray(v)) fail(path, "missing or not a message");
  return v as Rec;
}

/** A required string field. */
export function str(o: Rec, key: string, path: string, nonEmpty = false): string {
  const v = o[key];
  if (typeof v !== "string") fail(at(path, key), "missing or not a string");
  if (nonEmpty && v === "") fail(at(path, key), "must not be empty");
  return v;
}

/** An optional string field (proto3 optional: absent stays undefined). */
export function optStr(o: Rec, key: string, path: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") fail(at(path, key), "not a string");
  return v;
}

/** A bool field. */
export function bool(o: Rec, key: string, path: string): boolean {
  const v = o[key];
  if (typeof v !== "boolean") fail(at(path, key), "missing or not a bool");
  return v;
}

/** An optional bool field. */
export function optBool(o: Rec, key: string, path: string): boolean | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  return bool(o, key, path);
}

/** A number field within [min, max]. */
export function num(o: Rec, key: string, path: string, min: number, max: number): number {
  const v = o[key];
  if (typeof v !== "number" || Number.isNaN(v)) fail(at(path, key), "missing or not a number");
  if (v < min || v > max) fail(at(path, key), `${v} is out of range ${min}..${max}`);
  return v;
}

/** An optional number field within [min, max]. */
export function optNum(o: Rec, key: string, path: string, min: number, max: number): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  return num(o, key, path, min, max);
}

/** A string field limited to some values. */
export function oneOf<T extends string>(o: Rec, key: string, path: string, allowed: readonly T[]): T {
  const v = str(o, key, path);
  if (!(allowed as readonly string[]).includes(v)) fail(at(path, key), `'${v}' is not one of ${allowed.join(", ")}`);
  return v as T;
}

/** An optional string field limited to some values. */
export function optOneOf<T extends string>(o: Rec, key: string, path: string, allowed: readonly T[]): T | undefined {
  if (o[key] === undefined || o[key] === null) return undefined;
  return oneOf(o, key, path, allowed);
}

/** A repeated field of messages, each converted. */
export function list<T>(o: Rec, key: string, path: string, each: (v: Rec, path: string) => T): T[] {
  const v = o[key] ?? [];
  if (!Array.isArray(v)) fail(at(path, key), "not a list");
  return v.map((item, i) => each(rec(item, at(at(path, key), i)), at(at(path, key), i)));
}

/** A repeated string field, each optionally checked. */
export function strList(o: Rec, key: string, path: string, check?: (s: string, path: string) => void): string[] {
  const v = o[key] ?? [];
  if (!Array.isArray(v)) fail(at(path, key), "not a list");
  return v.map((item, i) => {
    if (typeof item !== "string") fail(at(at(path, key), i), "not a string");
    check?.(item, at(at(path, key), i));
    return item;
  });
}

/** A repeated number field within [min, max]. */
export function numList(o: Rec, key: string, path: string, min: number, max: number): number[] {
  const v = o[key] ?? [];
  if (!Array.isArray(v)) fail(at(path, key), "not a list");
  return v.map((item, i) => num({ v: item }, "v", at(at(path, key), i), min, max));
}

/** A map<string,string> field. */
export function strMap(o: Rec, key: string, path: string): Record<string, string> {
  const v = o[key] ?? {};
  if (typeof v !== "object" || v === null || Array.isArray(v)) fail(at(path, key), "not a map");
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v as Rec)) {
    if (typeof val !== "string") fail(at(path, key), `value of '${k}' is not a string`);
    out[k] = val;
  }
  return out;
}

/** An optional label map carried in a Labels wrapper message. */
export function optLabels(o: Rec, key: string, path: string): Record<string, string> | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  return strMap(rec(v, at(path, key)), "labels", at(path, key));
}

/** An optional sub-message, converted. */
export function optMsg<T>(o: Rec, key: string, path: string, convert: (v: Rec, path: string) => T): T | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  return convert(rec(v, at(path, key)), at(path, key));
}

/** Checks an IP address string. */
export function checkIp(s: string, path: string): void {
  if (isIP(s) === 0) fail(path, `'${s}' is not an IP address`);
}

/** Checks a CIDR ("10.0.0.0/8") or a bare IP (a single address). */
export function checkCidr(s: string, path: string): void {
  const [addr, prefix, extra] = s.split("/");
  const family = isIP(addr ?? "");
  if (family === 0 || extra !== undefined) fail(path, `'${s}' is not an IP address or CIDR`);
  if (prefix !== undefined) {
    const max = family === 4 ? 32 : 128;
    if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > max) fail(path, `'${s}' has an invalid prefix length (0..${max})`);
  }
}

/** Checks that a regex compiles (the proxy matches with JavaScript's engine). */
export function checkRegex(s: string, path: string): void {
  try {
    new RegExp(s);
  } catch (e) {
    fail(path, `regex '${s}' does not compile: ${errorMessage(e)}`);
  }
}

/** Drops undefined fields so values compare and dump cleanly. */
export function compact<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}
