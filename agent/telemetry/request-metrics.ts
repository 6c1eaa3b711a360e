/**
 * Istio's four request metrics (istio_requests_total, istio_request_duration_milliseconds,
 * istio_request_bytes, istio_response_bytes), counted in plain arrays per label set and only
 * turned into Prometheus samples when scraped. prom-client's own Counter and Histogram check and
 * hash every label on every observation, even through a bound child: with 27 labels that was a
 * measurable share of each proxied request.
 *
 * The objects registered here have prom-client's metric shape (name, help, type, get()), so a
 * registry renders them and AggregatorRegistry sums them across proxy workers like any other.
 */
import type { Registry } from "prom-client";
import type { TrafficLabels } from "./labels.js";

/** Istio's duration buckets (ms), so histogram_quantile over weft and Istio data agrees. */
const DURATION_BUCKETS = [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000];
/** Istio's size buckets (bytes). */
const SIZE_BUCKETS = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000];

type Labels = Record<string, string | number>;

interface Series {
  labels: Labels;
  count: number;
  duration: Float64Array;
  durationSum: number;
  requestBytes: Float64Array;
  requestSum: number;
  responseBytes: Float64Array;
  responseSum: number;
}

/** One sample as prom-client's get() reports it. */
interface Sample {
  labels: Labels;
  value: number;
  metricName?: string;
}

/** The first bucket whose upper bound holds v (the last slot is +Inf). */
function bucketOf(bounds: readonly number[], v: number): number {
  let i = 0;
  while (i < bounds.length && v > (bounds[i] as number)) i++;
  return i;
}

function histogramSamples(
  name: string,
  bounds: readonly number[],
  series: Iterable<Series>,
  pick: (s: Series) => [Float64Array, number],
): Sample[] {
  const out: Sample[] = [];
  for (const s of series) {
    const [counts, sum] = pick(s);
    let acc = 0;
    for (let i = 0; i <= bounds.length; i++) {
      acc += counts[i] as number;
      out.push({
        labels: { ...s.labels, le: i < bounds.length ? (bounds[i] as number) : "+Inf" },
        value: acc,
        metricName: `${name}_bucket`,
      });
    }
    out.push({ labels: s.labels, value: sum, metricName: `${name}_sum` });
    out.push({ labels: s.labels, value: s.count, metricName: `${name}_count` });
  }
  return out;
}

/** The request metrics of one proxy (worker). */
export class RequestMetrics {
  /** Series per label set (trafficLabels returns shared frozen objects) and code pair. */
  private readonly byLabels = new WeakMap<TrafficLabels, Map<string, Series>>();
  private readonly all: Series[] = [];
  /** The same series by label content: a label set rebuilt after the label cache was cleared finds its series again. */
  private readonly byContent = new Map<string, Series>();

  constructor(registry: Registry) {
    const series = () => this.all;
    const metric = (name: string, help: string, type: "counter" | "histogram", values: () => Sample[]) => ({
      name,
      help,
      type,
      aggregator: "sum" as const,
      get: async () => ({ name, help, type, aggregator: "sum" as const, values: values() }),
    });
    const metrics = [
      metric("istio_requests_total", "Total number of requests", "counter", () =>
        series().map((s) => ({ labels: s.labels, value: s.count })),
      ),
      metric("istio_request_duration_milliseconds", "Duration of requests in milliseconds", "histogram", () =>
        histogramSamples("istio_request_duration_milliseconds", DURATION_BUCKETS, series(), (s) => [s.duration, s.durationSum]),
      ),
      metric("istio_request_bytes", "Request body sizes in bytes", "histogram", () =>
        histogramSamples("istio_request_bytes", SIZE_BUCKETS, series(), (s) => [s.requestBytes, s.requestSum]),
      ),
      metric("istio_response_bytes", "Response body sizes in bytes", "histogram", () =>
        histogramSamples("istio_response_bytes", SIZE_BUCKETS, series(), (s) => [s.responseBytes, s.responseSum]),
      ),
    ];
    // prom-client's registry accepts any object of its metric shape.
    for (const m of metrics) registry.registerMetric(m as unknown as Parameters<Registry["registerMetric"]>[0]);
  }

  private series(labels: TrafficLabels, responseCode: number, grpcStatus: string, key: string, byCode: Map<string, Series>): Series {
    const content = `${Object.values(labels).join("\u0000")}\u0000${key}`;
    let s = this.byContent.get(content);
    if (!s) {
      s = {
        labels: { ...labels, response_code: String(responseCode), grpc_response_status: grpcStatus },
        count: 0,
        duration: new Float64Array(DURATION_BUCKETS.length + 1),
        durationSum: 0,
        requestBytes: new Float64Array(SIZE_BUCKETS.length + 1),
        requestSum: 0,
        responseBytes: new Float64Array(SIZE_BUCKETS.length + 1),
        responseSum: 0,
      };
      this.byContent.set(content, s);
      this.all.push(s);
    }
    byCode.set(key, s);
    return s;
  }

  /** Records one finished request. */
  record(
    labels: TrafficLabels,
    responseCode: number,
    grpcStatus: string,
    durationMs: number,
    requestBytes: number,
    responseBytes: number,
  ): void {
    let byCode = this.byLabels.get(labels);
    if (!byCode) {
      byCode = new Map();
      this.byLabels.set(labels, byCode);
    }
    const key = grpcStatus === "" ? String(responseCode) : `${responseCode}|${grpcStatus}`;
    let s = byCode.get(key);
    if (!s) s = this.series(labels, responseCode, grpcStatus, key, byCode);
    s.count++;
    s.duration[bucketOf(DURATION_BUCKETS, durationMs)]++;
    s.durationSum += durationMs;
    s.requestBytes[bucketOf(SIZE_BUCKETS, requestBytes)]++;
    s.requestSum += requestBytes;
    s.responseBytes[bucketOf(SIZE_BUCKETS, responseBytes)]++;
    s.responseSum += responseBytes;
  }
}
