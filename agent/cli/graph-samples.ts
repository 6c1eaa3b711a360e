/**
 * Prometheus text exposition → samples, and two scrapes → per-second rates. Only what the graph
 * needs: counters and histogram buckets, keyed by their full label set.
 */

/** One sample: metric name, labels, value. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A sample as a rate over a window, with its cumulative value (for "ever carried traffic"). */
export interface RateSample extends Sample {
  /** Per second over the window. */
  rate: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?\s*$/;

function parseLabels(text: string, line: number): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    while (text[i] === "," || text[i] === " ") i++;
    if (i >= text.length) break;
    const eq = text.indexOf("=", i);
    if (eq < 0 || text[eq + 1] !== '"') throw new Error(`metrics line ${line}: malformed labels '${text}'`);
    const key = text.slice(i, eq).trim();
    let j = eq + 2;
    let value = "";
    while (j < text.length && text[j] !== '"') {
      if (text[j] === "\\") {
        const n = text[j + 1];
        value += n === "n" ? "\n" : (n ?? "");
        j += 2;
      } else value += text[j++];
    }
    if (j >= text.length) throw new Error(`metrics line ${line}: unterminated label value in '${text}'`);
    out[key] = value;
    i = j + 1;
  }
  return out;
}

/** Parses Prometheus text; `only` keeps samples whose name starts with one of the prefixes. */
export function parsePrometheusText(text: string, only: readonly string[] = []): Sample[] {
  const out: Sample[] = [];
  for (const [n, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const m = LINE.exec(line);
    if (!m) throw new Error(`metrics line ${n + 1}: cannot parse '${line.slice(0, 80)}'`);
    const name = m[1] as string;
    if (only.length && !only.some((p) => name.startsWith(p))) continue;
    const value = Number(m[4]);
    out.push({ name, labels: m[3] ? parseLabels(m[3], n + 1) : {}, value });
  }
  return out;
}

/** Key of a sample: name and sorted labels. */
export function sampleKey(s: Pick<Sample, "name" | "labels">): string {
  return `${s.name}{${Object.keys(s.labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(s.labels[k])}`)
    .join(",")}}`;
}

/** Sums samples with the same key (several agents, or several scrapes of one). */
export function sumSamples(lists: readonly (readonly Sample[])[]): Sample[] {
  const by = new Map<string, Sample>();
  for (const list of lists)
    for (const s of list) {
      const k = sampleKey(s);
      const prev = by.get(k);
      if (prev) prev.value += s.value;
      else by.set(k, { ...s, labels: { ...s.labels } });
    }
  return [...by.values()];
}

/**
 * Rates between two scrapes `seconds` apart. A series absent before started during the window; a
 * value that went down is a counter reset (an agent restarted): its current value is the increase.
 */
export function ratesBetween(before: readonly Sample[], after: readonly Sample[], seconds: number): RateSample[] {
  const prev = new Map(before.map((s) => [sampleKey(s), s.value]));
  return after.map((s) => {
    const p = prev.get(sampleKey(s)) ?? 0;
    const increase = s.value >= p ? s.value - p : s.value;
    return { ...s, rate: seconds > 0 ? increase / seconds : 0 };
  });
}
