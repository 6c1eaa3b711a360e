/**
 * The shape every measured path has. A variant sets up whatever carries the client pod's
 * traffic to the server pod (nothing, an HAProxy pair, the weft mesh), says what the client
 * should dial and which processes are its proxies (their CPU and RSS are its cost), and tears
 * it all down again. Benchmarks never know which variant they measure.
 */
import type { PodRecord } from "../../scripts/cluster/state.js";
import type { BenchCluster } from "./cluster.js";

/** The variants, in the order their rows appear. */
export const VARIANT_NAMES = [
  "direct",
  "direct-same-node",
  "haproxy",
  "haproxy-http",
  "weft",
  "weft-same-node",
  "weft-l7",
  "weft-l7-authz1",
  "weft-l7-authz",
] as const;

/** The L4 paths: what a benchmark measures unless it asks for the L7 ones too. */
export const L4_VARIANTS = ["direct", "haproxy", "weft"] as const;

/** A variant's name. */
export type VariantName = (typeof VARIANT_NAMES)[number];

/** An address the client dials. */
export interface Endpoint {
  host: string;
  port: number;
}

/** What a variant gets to work with. Each variant has its own client and server pods. */
export interface VariantContext {
  cluster: BenchCluster;
  /** The client pod, on node 1 (wrk, curl and the idle-connection holder run here). */
  client: PodRecord;
  /** The server pod, on node 2 or, for a same-node variant, node 1 (nginx listens on server.ip:serverPort). */
  server: PodRecord;
  serverPort: number;
  /** A private directory for configs and keys; removed after the run. */
  workDir: string;
  /** Progress lines (stderr). */
  log(message: string): void;
}

/** A variant once set up. */
export interface VariantSetup {
  /** What the client dials to reach the server through this path. */
  target: Endpoint;
  /** The proxy processes (whole thread groups) whose CPU and memory are this path's cost. */
  proxyPids: number[];
  /** Most connections the path can hold at once (fd limits), when it has such a bound. */
  maxConnections?: number;
  /** Facts worth reporting (negotiated TLS, versions…), shown in the notes. */
  info?: Record<string, string>;
}

/** A measured path. A fresh instance per setup: teardown undoes that instance's setup. */
export interface BenchVariant {
  name: VariantName;
  /** Human name for tables ("HAProxy mTLS pair"). */
  title: string;
  /** The node of the server pod (default 2: across nodes from the client; 1: the same node). */
  serverNode?: 1 | 2;
  /** Why this variant cannot run here (a missing tool, a missing component), or null. */
  unavailable(): string | null;
  setup(ctx: VariantContext): Promise<VariantSetup>;
  /** Stops what setup started; safe to call after a failed or partial setup. */
  teardown(): Promise<void>;
}
