/**
 * The pods file `weft redirect serve --pods FILE` watches: JSON, an array of PodRedirect. Parsed
 * strictly, with errors naming the file, the entry and the field, so a bad edit is rejected
 * whole (the last good set stays applied) instead of half-applied.
 */
import { readFileSync } from "node:fs";
import { errorMessage } from "../../common/errors.js";
import type { PodRedirect } from "./types.js";

const FIELDS = ["uid", "namespace", "name", "cgroupPath", "ip", "hostInterface", "capture", "inbound"] as const;

/** Parses pods file text; throws naming the file and every bad field. */
export function parsePods(text: string, file: string): PodRedirect[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new Error(`pods file ${file}: not valid JSON: ${errorMessage(e)}`);
  }
  if (!Array.isArray(data))
    throw new Error(`pods file ${file}: expected a JSON array of pods, got ${data === null ? "null" : typeof data}`);
  const problems: string[] = [];
  const pods: PodRedirect[] = [];
  data.forEach((entry: unknown, i) => {
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
      problems.push(`[${i}]: expected an object`);
      return;
    }
    const o = entry as Record<string, unknown>;
    for (const f of FIELDS) {
      if (!(f in o)) problems.push(`[${i}].${f}: missing`);
    }
    for (const f of ["uid", "namespace", "name", "cgroupPath", "ip", "hostInterface"] as const) {
      if (f in o && typeof o[f] !== "string") problems.push(`[${i}].${f}: expected a string`);
    }
    if ("capture" in o && typeof o.capture !== "boolean") problems.push(`[${i}].capture: expected true or false`);
    if ("inbound" in o && !["off", "permissive", "strict"].includes(o.inbound as string)) {
      problems.push(`[${i}].inbound: '${String(o.inbound)}' must be off, permissive or strict`);
    }
    const unknown = Object.keys(o).filter((k) => !(FIELDS as readonly string[]).includes(k));
    if (unknown.length) problems.push(`[${i}]: unknown field(s) ${unknown.join(", ")}`);
    pods.push(o as unknown as PodRedirect);
  });
  if (problems.length) throw new Error(`pods file ${file}:\n  ${problems.join("\n  ")}`);
  return pods;
}

/** Reads and parses a pods file. */
export function readPodsFile(file: string): PodRedirect[] {
  return parsePods(readFileSync(file, "utf8"), file);
}
