/** Output for `weft` commands: human tables by default, `-o json|yaml` for machines. */
import { createRequire } from "node:module";
import { type ErrorCode, errorMessage, errorStack, WeftError } from "./errors.js";

const require = createRequire(import.meta.url);

/** yaml is loaded only when YAML output is asked for: long-running commands never pay for it. */
function stringify(value: unknown): string {
  return (require("yaml") as typeof import("yaml")).stringify(value);
}

/** Output formats every listing command accepts. */
export type OutputFormat = "table" | "json" | "yaml";

/** Parses -o; throws naming the accepted values. */
export function parseFormat(text: string | undefined): OutputFormat {
  const f = (text ?? "table").toLowerCase();
  if (f === "table" || f === "wide" || f === "") return "table";
  if (f === "json" || f === "yaml") return f;
  throw new CliError(`unknown output format '${text}': use table, json or yaml`);
}

/** Renders rows as an aligned text table with a header row. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}

/** Prints a value as json/yaml, or through a human renderer for tables. */
export function emit(format: OutputFormat, value: unknown, human: () => string): void {
  if (format === "json") process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  else if (format === "yaml") process.stdout.write(stringify(value));
  else process.stdout.write(`${human()}\n`);
}

/** An error the CLI prints as one line (no stack) before exiting non-zero. */
export class CliError extends WeftError {
  override readonly name = "CliError";
  constructor(
    message: string,
    readonly exitCode = 1,
    code: ErrorCode = "WEFT_INVALID_INPUT",
  ) {
    super(code, message);
  }
}

/** Wraps a command action so any error becomes one clear line and a non-zero exit code. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void> | void): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (e) {
      // A coded failure names its code (what logs and metrics carry); bad input is just said.
      const tag = e instanceof WeftError && e.code !== "WEFT_INVALID_INPUT" ? ` [${e.code}]` : "";
      process.stderr.write(`weft: ${errorMessage(e)}${tag}\n`);
      if (process.env.WEFT_DEBUG) process.stderr.write(`${errorStack(e)}\n`);
      const exitCode = (e as { exitCode?: unknown } | null)?.exitCode;
      process.exitCode = typeof exitCode === "number" ? exitCode : 1;
    }
  };
}

/** Parses a whole number option, naming the option when it is not one. */
export function intOption(name: string, min: number, max: number): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < min || n > max) throw new CliError(`${name} '${v}': expected a whole number from ${min} to ${max}`);
    return n;
  };
}

/** Parses "k=v,k2=v2" into a map. */
export function parseLabels(text: string | undefined, what = "labels"): Record<string, string> {
  const out: Record<string, string> = {};
  if (!text) return out;
  for (const part of text.split(",").filter(Boolean)) {
    const i = part.indexOf("=");
    if (i <= 0) throw new CliError(`${what} '${part}': expected key=value`);
    out[part.slice(0, i)] = part.slice(i + 1);
  }
  return out;
}
