/**
 * A proxy worker thread: its own listeners (SO_REUSEPORT), its own HBONE pool, its own view
 * built from the snapshot the main thread sends. Nothing is shared but the kernel sockets.
 */
import diagnostics from "node:diagnostics_channel";
import { type MessagePort, parentPort, workerData } from "node:worker_threads";
import pino from "pino";
import { createLogger } from "../../common/log.js";
import { MeshView } from "../state/view.js";
import { ProxyMetrics } from "../telemetry/metrics.js";
import type { ConnectionEvent } from "./connection-manager.js";
import { REQUEST_CHANNEL, type RequestEvent } from "./l7/request-event.js";
import { NodeProxy } from "./proxy.js";
import { WorkerIdentities } from "./worker-identities.js";
import type { FromWorker, ToWorker, WorkerInit } from "./worker-protocol.js";

const port = parentPort as MessagePort;
const init = workerData as WorkerInit;
// Straight to fd 1: a worker's process.stdout would hop through the main thread for every line.
const log = createLogger({ name: "weft-agent", level: init.logLevel, destination: pino.destination({ fd: 1, sync: false }) }).child({
  worker: init.index,
});
let view = new MeshView(init.snapshot);
const viewListeners = new Set<(v: MeshView) => void>();
const identities = new WorkerIdentities(port, init.bundle);
const metrics = new ProxyMetrics();
const proxy = new NodeProxy({
  config: { ...init.config, reusePort: true },
  view: () => view,
  onViewChange: (l) => {
    viewListeners.add(l);
    return () => viewListeners.delete(l);
  },
  identity: identities,
  metrics,
  log,
});

const post = (m: FromWorker) => port.postMessage(m);
const forward = (m: unknown) => post({ type: "event", event: m as ConnectionEvent });
const forwardRequest = (m: unknown) => post({ type: "event", event: { type: "request", request: m as RequestEvent } });

port.on("message", (m: ToWorker) => {
  switch (m.type) {
    case "snapshot":
      view = new MeshView(m.data);
      for (const l of viewListeners) l(view);
      return;
    case "identity-changed":
      identities.changed(m.bundle);
      return;
    case "cert":
      identities.answer(m.reqId, m.cert, m.error);
      return;
    case "query":
      void answer(m.reqId, m.what);
      return;
    case "tap":
      if (m.enabled) {
        diagnostics.subscribe("weft:connection", forward);
        diagnostics.subscribe(REQUEST_CHANNEL, forwardRequest);
      } else {
        diagnostics.unsubscribe("weft:connection", forward);
        diagnostics.unsubscribe(REQUEST_CHANNEL, forwardRequest);
      }
      return;
    case "log-level":
      log.level = m.level;
      return;
    case "stop":
      void proxy.stop(m.drainMs).finally(() => {
        post({ type: "stopped" });
        log.flush();
        setImmediate(() => process.exit(0));
      });
      return;
  }
});

async function answer(reqId: number, what: "connections" | "pool" | "metrics"): Promise<void> {
  const data =
    what === "connections" ? proxy.connections() : what === "pool" ? proxy.poolStats() : await metrics.registry.getMetricsAsJSON();
  post({ type: "answer", reqId, data });
}

proxy.start().then(
  () => post({ type: "started" }),
  (e: Error) => post({ type: "failed", error: e.message }),
);
