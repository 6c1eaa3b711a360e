/**
 * Request tracing in the node proxies with the OpenTelemetry JS SDK: a client span at the source
 * proxy and a server span at the destination proxy per request, W3C traceparent/tracestate
 * propagated (B3 headers accepted as a parent when no traceparent came), OpenTelemetry HTTP
 * semantic conventions plus Istio's canonical service attributes, exported over OTLP
 * http/protobuf in batches. Export runs off the request path: a slow or absent collector costs
 * dropped spans, never a delayed or failed request.
 */
import {
  type Attributes,
  type Context,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  trace,
} from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  type Sampler,
  type SamplingResult,
  type SpanExporter,
  TraceIdRatioBasedSampler,
} from "@opentelemetry/sdk-trace-base";
import {
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVICE_NAME,
  ATTR_URL_PATH,
} from "@opentelemetry/semantic-conventions";

/** Where spans go and how many requests start a trace. */
export interface TracingConfig {
  /** OTLP http/protobuf endpoint base, e.g. http://10.250.0.1:4318 (spans go to /v1/traces). */
  endpoint: string;
  /** Share of requests without a sampling decision that are traced (Istio's randomSamplingPercentage). */
  samplingPercentage: number;
}

/** What a request span is labelled with. */
export interface SpanFacts {
  method: string;
  path: string;
  authority: string;
  /** Istio canonical service attributes of the workload the span is about. */
  canonicalService?: string;
  canonicalRevision?: string;
  namespace?: string;
}

/** One request's span; end() once. */
export interface RequestSpan {
  end(status: number, flags: string): void;
}

type Headers = Record<string, string | string[]>;

const getter: TextMapGetter<Headers> = {
  keys: (h) => Object.keys(h),
  get: (h, k) => h[k.toLowerCase()],
};

const w3c = new W3CTraceContextPropagator();

/** The parent a request carries: W3C first, else B3 (multi-header or single `b3`). */
export function parentOf(headers: Headers): Context {
  if (headers.traceparent !== undefined) return w3c.extract(ROOT_CONTEXT, headers, getter);
  const one = (k: string) => {
    const v = headers[k];
    return Array.isArray(v) ? v[0] : v;
  };
  let traceId = one("x-b3-traceid");
  let spanId = one("x-b3-spanid");
  let sampled = one("x-b3-sampled");
  const single = one("b3");
  if (!traceId && single) [traceId, spanId, sampled] = single.split("-");
  if (!traceId || !spanId || !/^[0-9a-f]{16}([0-9a-f]{16})?$/i.test(traceId) || !/^[0-9a-f]{16}$/i.test(spanId)) return ROOT_CONTEXT;
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: traceId.padStart(32, "0").toLowerCase(),
    spanId: spanId.toLowerCase(),
    traceFlags: sampled === "1" || sampled === "d" ? 1 : 0,
    isRemote: true,
  });
}

/**
 * Root sampling at the percentage of the request at hand: a Telemetry may set a different one
 * per workload, and the SDK's ratio sampler is fixed at construction. start() sets `percentage`
 * right before startSpan, which calls the sampler synchronously, so no other request can
 * interleave. The decision is the SDK's own trace-id ratio, so it is consistent per trace.
 */
class ScopedRatioSampler implements Sampler {
  percentage = 0;
  private readonly byRatio = new Map<number, TraceIdRatioBasedSampler>();

  shouldSample(context: Context, traceId: string): SamplingResult {
    const ratio = Math.min(100, Math.max(0, this.percentage)) / 100;
    let s = this.byRatio.get(ratio);
    if (!s) {
      // A handful of distinct percentages exist (one per Telemetry); the bound is only a guard.
      if (this.byRatio.size > 256) this.byRatio.clear();
      s = new TraceIdRatioBasedSampler(ratio);
      this.byRatio.set(ratio, s);
    }
    return s.shouldSample(context, traceId);
  }

  toString(): string {
    return "ScopedRatioSampler";
  }
}

/** The proxy's tracer: starts spans and writes the propagation headers for the next hop. */
export class ProxyTracer {
  private readonly provider: BasicTracerProvider;
  private readonly tracer;
  private readonly root = new ScopedRatioSampler();

  constructor(
    private readonly cfg: TracingConfig,
    node: string,
    exporter?: SpanExporter,
  ) {
    const out = exporter ?? new OTLPTraceExporter({ url: `${cfg.endpoint.replace(/\/+$/, "")}/v1/traces`, timeoutMillis: 5_000 });
    this.provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: "weft-proxy", "weft.node": node }),
      sampler: new ParentBasedSampler({ root: this.root }),
      // Bounded queue: when the collector cannot keep up, spans are dropped, requests never wait.
      spanProcessors: [new BatchSpanProcessor(out, { maxQueueSize: 2048, scheduledDelayMillis: 500 })],
    });
    this.tracer = this.provider.getTracer("weft");
  }

  /**
   * Starts a span for a request (parent: its trace headers) and rewrites those headers so the
   * next hop continues the trace from this span (traceparent always, unsampled ones too, so the
   * decision is kept downstream). A request that starts a trace is sampled at
   * `samplingPercentage` (the workload's Telemetry), else at the agent's configured percentage.
   */
  start(kind: "client" | "server", headers: Headers, facts: SpanFacts, samplingPercentage?: number): RequestSpan {
    const parent = parentOf(headers);
    const attributes: Attributes = {
      [ATTR_HTTP_REQUEST_METHOD]: facts.method,
      [ATTR_URL_PATH]: facts.path.split("?")[0] as string,
      [ATTR_SERVER_ADDRESS]: facts.authority,
      ...(facts.canonicalService ? { "istio.canonical_service": facts.canonicalService } : {}),
      ...(facts.canonicalRevision ? { "istio.canonical_revision": facts.canonicalRevision } : {}),
      ...(facts.namespace ? { "istio.namespace": facts.namespace } : {}),
    };
    this.root.percentage = samplingPercentage ?? this.cfg.samplingPercentage;
    const span: Span = this.tracer.startSpan(
      `${facts.authority}${attributes[ATTR_URL_PATH] as string}`,
      { kind: kind === "client" ? SpanKind.CLIENT : SpanKind.SERVER, attributes },
      parent,
    );
    w3c.inject(trace.setSpan(parent, span), headers, {
      set: (h, k, v) => {
        h[k] = v;
      },
    });
    return {
      end: (status, flags) => {
        span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
        if (flags !== "-") span.setAttribute("weft.response_flags", flags);
        if (status >= 500 || status === 0) span.setStatus({ code: SpanStatusCode.ERROR });
        span.end();
      },
    };
  }

  /** Sends what is queued (tests, shutdown). */
  flush(): Promise<void> {
    return this.provider.forceFlush();
  }

  /** Flushes and stops exporting; a collector that cannot be reached costs the queued spans only. */
  shutdown(): Promise<void> {
    return this.provider.shutdown().catch(() => undefined);
  }
}
