/** The one dependency bundle every listener of the proxy is handed (ztunnel's ProxyInputs). */

import type { Logger } from "pino";
import type { SocketSplicer } from "../../native/sock-splice.js";
import type { IdentitySource } from "../identity/types.js";
import type { MeshView } from "../state/view.js";
import type { ProxyMetrics } from "../telemetry/metrics.js";
import type { ProxyTracer, TracingConfig } from "../telemetry/tracing.js";
import type { ConnectionManager } from "./connection-manager.js";
import type { ProxyLimits } from "./limits.js";
import type { HbonePool, PoolOptions } from "./pool.js";
import type { EndpointPicker, SocketAddr } from "./request.js";
import type { ContextCache } from "./tls.js";

/** Proxy settings. */
export interface ProxyConfig {
  /** Where captured outbound connections arrive (the pods' gateway, 15001). */
  outbound: SocketAddr;
  /** Where HBONE is served (the node address, 15008). */
  hbone: SocketAddr;
  /**
   * Capture listeners on the proxy address (IP_TRANSPARENT), fed by the node's tproxy rules:
   * plaintext to enrolled pods (15006), and HBONE addressed to a pod's IP:15008 as other meshes
   * send it (no weft SNI: the pod's identity is chosen by the address dialled). Unset: not served.
   */
  plaintext?: SocketAddr;
  hboneCaptured?: SocketAddr;
  /**
   * Capture is on: dial pods from the client's own address (the node's rules bring the replies
   * back), and mark passthrough dials PASSTHROUGH_MARK so they never pass the STRICT guard.
   */
  transparent?: boolean;
  /** Give up dialling a pod or a peer node after this long. */
  connectTimeoutMs: number;
  pool: PoolOptions;
  /** HTTP/2 per-stream receive window: large enough that one stream can fill the link. */
  streamWindowBytes: number;
  /** HTTP/2 per-session receive window. */
  sessionWindowBytes: number;
  /** How long an undeclared service port waits for the client's first bytes before it is TCP. */
  sniffTimeoutMs?: number;
  /** Listen with SO_REUSEPORT so several workers share the ports. */
  reusePort?: boolean;
  /** Listener limits; unset ones take DEFAULT_PROXY_LIMITS. */
  limits?: Partial<ProxyLimits>;
  /** Request tracing (absent: off). */
  tracing?: TracingConfig;
  /**
   * The splice program (bpf/build/splice.o): same-node connections that only L4 policy applies to
   * are carried socket to socket in the kernel. Absent, or when it cannot load: the proxy copies.
   */
  kernelSplice?: string;
}

/** Defaults: windows as ztunnel's (4 MiB stream, 16 MiB connection). */
export const DEFAULT_PROXY_TUNING = {
  connectTimeoutMs: 5000,
  streamWindowBytes: 4 * 1024 * 1024,
  sessionWindowBytes: 16 * 1024 * 1024,
};

/** Everything a listener needs. */
export interface ProxyContext {
  config: ProxyConfig;
  /** The current mesh view (immutable; replaced on change). */
  view(): MeshView;
  identity: IdentitySource;
  contexts: ContextCache;
  pool: HbonePool;
  connections: ConnectionManager;
  metrics: ProxyMetrics;
  log: Logger;
  pick: EndpointPicker;
  /** Request spans (present when tracing is on). */
  tracer?: ProxyTracer;
  /** The kernel splice for same-node connections (present when it loaded). */
  splicer?: SocketSplicer;
}
