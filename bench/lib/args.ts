/** Command-line options shared by the bench scripts, with errors that name the flag and the fix. */
import { parseArgs } from "node:util";
import { errorMessage } from "../../common/errors.js";
import { VARIANT_NAMES, type VariantName } from "./variant.js";

/** Options every bench script takes. */
export interface CommonArgs {
  /** A ~10–20 s smoke version of the benchmark. */
  quick: boolean;
  rounds: number;
  variants: VariantName[];
  cluster: string;
}

/** A script's own option: a whole number with bounds and a default (and a --quick default). */
export interface NumberOption {
  flag: string;
  help: string;
  min: number;
  max: number;
  full: number;
  quick: number;
}

/** A bad command line: the message is the whole story, printed without a stack. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** Default cluster of the bench scripts; one at a time, torn down by bench/run's trap too. */
export const BENCH_CLUSTER = "weft-bench";

/**
 * Parses argv: --quick, --rounds N, --variants a,b, --cluster NAME, plus the script's numbers.
 * `rounds` defaults to 3 (1 with --quick).
 */
export function parseBenchArgs(
  argv: readonly string[],
  script: string,
  own: readonly NumberOption[] = [],
  defaultVariants: readonly VariantName[] = VARIANT_NAMES,
): CommonArgs & { numbers: Record<string, number> } {
  const options: Record<string, { type: "string" | "boolean" }> = {
    quick: { type: "boolean" },
    rounds: { type: "string" },
    variants: { type: "string" },
    cluster: { type: "string" },
    help: { type: "boolean" },
  };
  for (const o of own) options[o.flag] = { type: "string" };
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }));
  } catch (e) {
    throw new UsageError(`${errorMessage(e)}\n${usage(script, own, defaultVariants)}`);
  }
  if (values.help) throw new UsageError(usage(script, own, defaultVariants));
  const quick = values.quick === true;
  const numbers: Record<string, number> = {};
  for (const o of own)
    numbers[o.flag] = wholeNumber(`--${o.flag}`, values[o.flag] as string | undefined, o.min, o.max, quick ? o.quick : o.full);
  const cluster = (values.cluster as string | undefined) ?? BENCH_CLUSTER;
  if (!/^weft-[a-z0-9]{1,12}$/.test(cluster)) throw new UsageError(`--cluster '${cluster}': expected weft-<1-12 lowercase letters/digits>`);
  return {
    quick,
    rounds: wholeNumber("--rounds", values.rounds as string | undefined, 1, 20, quick ? 1 : 3),
    variants: parseVariants(values.variants as string | undefined, defaultVariants),
    cluster,
    numbers,
  };
}

/** Parses a whole number flag; undefined gives the default. */
export function wholeNumber(flag: string, text: string | undefined, min: number, max: number, dflt: number): number {
  if (text === undefined) return dflt;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max) throw new UsageError(`${flag} '${text}': expected a whole number from ${min} to ${max}`);
  return n;
}

/** "direct,haproxy" → the variants in report order; undefined means the script's defaults. */
export function parseVariants(text: string | undefined, defaults: readonly VariantName[] = VARIANT_NAMES): VariantName[] {
  if (text === undefined) return VARIANT_NAMES.filter((v) => defaults.includes(v));
  const asked = text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  if (asked.length === 0) throw new UsageError(`--variants '${text}': name at least one of ${VARIANT_NAMES.join(", ")}`);
  for (const a of asked) {
    if (!(VARIANT_NAMES as readonly string[]).includes(a))
      throw new UsageError(`--variants: unknown variant '${a}' (known: ${VARIANT_NAMES.join(", ")})`);
  }
  return VARIANT_NAMES.filter((v) => asked.includes(v));
}

function usage(script: string, own: readonly NumberOption[], defaults: readonly VariantName[]): string {
  const lines = [
    `usage: node dist/bench/${script}.js [--quick] [--rounds N] [--variants ${VARIANT_NAMES.join(",")}] [--cluster weft-<name>]${own.map((o) => ` [--${o.flag} N]`).join("")}`,
    "  --quick          smoke run: short and one round (numbers not for quoting)",
    "  --rounds N       interleaved rounds; the report shows medians (default 3, 1 with --quick)",
    `  --variants LIST  which paths to measure (default ${defaults.join(",")}; known: ${VARIANT_NAMES.join(",")})`,
    `  --cluster NAME   local cluster to create and remove (default ${BENCH_CLUSTER})`,
    ...own.map((o) => `  --${o.flag.padEnd(15)} ${o.help} (default ${o.full}, ${o.quick} with --quick; ${o.min}–${o.max})`),
  ];
  return lines.join("\n");
}
