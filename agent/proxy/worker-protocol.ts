/** Messages between the agent's main thread and proxy worker threads (structured-clone data only). */
import type { MeshSnapshotData } from "../../controller/api/model.js";
import type { WorkloadCertificate } from "../identity/types.js";
import type { ProxyConfig } from "./context.js";
import type { TapEvent } from "./handle.js";

/** Sent once as workerData. */
export interface WorkerInit {
  index: number;
  config: ProxyConfig;
  snapshot: MeshSnapshotData;
  bundle: string[];
  logLevel: string;
}

/** Queries the main thread asks of each worker. */
export type WorkerQuery = "connections" | "pool" | "metrics";

/** Main → worker. */
export type ToWorker =
  | { type: "snapshot"; data: MeshSnapshotData }
  | { type: "identity-changed"; bundle: string[] }
  | { type: "cert"; reqId: number; cert?: WorkloadCertificate; error?: string }
  | { type: "query"; reqId: number; what: WorkerQuery }
  | { type: "tap"; enabled: boolean }
  | { type: "log-level"; level: string }
  | { type: "stop"; drainMs: number };

/** Worker → main. */
export type FromWorker =
  | { type: "started" }
  | { type: "failed"; error: string }
  | { type: "cert-request"; reqId: number; identity: string }
  | { type: "answer"; reqId: number; data: unknown }
  | { type: "event"; event: TapEvent }
  | { type: "stopped" };
