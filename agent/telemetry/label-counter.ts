/**
 * A Prometheus counter keyed by shared, immutable label-set objects (trafficLabels' frozen sets):
 * an increment is a WeakMap lookup and an add. prom-client's Counter checks and hashes every
 * label on every inc(); with Istio's 23 traffic labels and four TCP series per connection on each
 * of two agents, that was a measurable share of a new connection's cost.
 *
 * The object registered has prom-client's metric shape (name, help, type, get()), so a registry
 * renders it and AggregatorRegistry sums it across proxy workers like any other.
 */
import type { Registry } from "prom-client";

type Labels = Readonly<Record<string, string>>;

interface Entry {
  labels: Labels;
  value: number;
}

/** A counter over label-set objects that callers share and never mutate. */
export class LabelCounter {
  private readonly byObject = new WeakMap<Labels, Entry>();
  /** By label content: an equal label set rebuilt later (a cleared label cache) finds its entry. */
  private readonly byContent = new Map<string, Entry>();

  constructor(registry: Registry, name: string, help: string) {
    const get = async () => ({
      name,
      help,
      type: "counter" as const,
      aggregator: "sum" as const,
      values: [...this.byContent.values()].map((e) => ({ labels: e.labels, value: e.value })),
    });
    const metric = { name, help, type: "counter", aggregator: "sum", get };
    // prom-client's registry accepts any object of its metric shape.
    registry.registerMetric(metric as unknown as Parameters<Registry["registerMetric"]>[0]);
  }

  /** Adds `by` (default 1) to the series of this label set. */
  inc(labels: Labels, by = 1): void {
    let e = this.byObject.get(labels);
    if (!e) {
      const content = Object.keys(labels)
        .sort()
        .map((k) => `${k}=${labels[k]}`)
        .join("\u0000");
      e = this.byContent.get(content);
      if (!e) {
        e = { labels, value: 0 };
        this.byContent.set(content, e);
      }
      this.byObject.set(labels, e);
    }
    e.value += by;
  }
}
