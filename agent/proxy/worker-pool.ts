/**
 * N proxy worker threads behind one ProxyHandle. The main thread owns state and identity; it sends
 * each worker the immutable snapshot on every change and answers certificate requests. A worker
 * that dies is replaced (its listeners were only one of N sharing the ports, so service goes on).
 */
import { Worker } from "node:worker_threads";
import type { Logger } from "pino";
import type { IdentitySource } from "../identity/types.js";
import type { MeshView } from "../state/view.js";
import type { ConnectionSnapshot } from "./connection-manager.js";
import type { ProxyConfig } from "./context.js";
import type { MetricsJson, ProxyHandle, ProxyPoolStats, TapEvent } from "./handle.js";
import type { PoolStats } from "./pool.js";
import type { FromWorker, ToWorker, WorkerInit, WorkerQuery } from "./worker-protocol.js";

/** What the pool is built from. */
export interface WorkerPoolDeps {
  count: number;
  config: ProxyConfig;
  view: () => MeshView;
  onViewChange: (l: (v: MeshView) => void) => () => void;
  identity: IdentitySource;
  log: Logger;
}

interface Slot {
  index: number;
  worker: Worker;
  stopping: boolean;
}

/** ProxyHandle over worker threads. */
export class WorkerProxyHandle implements ProxyHandle {
  private readonly slots: Slot[] = [];
  private readonly pending = new Map<number, { remaining: number; results: unknown[]; resolve: (r: unknown[]) => void }>();
  private readonly tapListeners = new Set<(e: TapEvent) => void>();
  private nextReq = 1;
  private unsubscribe: (() => void)[] = [];
  private stopping = false;
  private logLevel: string;

  constructor(private readonly deps: WorkerPoolDeps) {
    this.logLevel = deps.log.level;
  }

  get workers(): number {
    return this.deps.count;
  }

  /** Spawns the workers; resolves when all listen, rejects (stopping the rest) if one cannot. */
  async start(): Promise<void> {
    this.unsubscribe.push(this.deps.onViewChange((v) => this.broadcast({ type: "snapshot", data: v.data })));
    this.unsubscribe.push(
      this.deps.identity.onChange(() => this.broadcast({ type: "identity-changed", bundle: [...this.deps.identity.trustBundle()] })),
    );
    try {
      await Promise.all(Array.from({ length: this.deps.count }, (_, i) => this.spawn(i)));
    } catch (e) {
      await this.stop(0);
      throw e;
    }
  }

  private spawn(index: number): Promise<void> {
    const init: WorkerInit = {
      index,
      config: this.deps.config,
      snapshot: this.deps.view().data,
      bundle: [...this.deps.identity.trustBundle()],
      logLevel: this.logLevel,
    };
    const worker = new Worker(new URL("./worker-entry.js", import.meta.url), { workerData: init, stdout: false, stderr: false });
    const slot: Slot = { index, worker, stopping: false };
    this.slots[index] = slot;
    return new Promise((resolve, reject) => {
      worker.on("message", (m: FromWorker) => {
        if (m.type === "started") resolve();
        else if (m.type === "failed") reject(new Error(`proxy worker ${index} could not start: ${m.error}`));
        else this.onMessage(slot, m);
      });
      worker.on("error", (e) => {
        this.deps.log.error({ worker: index, err: e.message, stack: e.stack }, "proxy worker crashed");
        reject(e);
      });
      worker.on("exit", (code) => {
        if (this.stopping || slot.stopping) return;
        this.deps.log.error({ worker: index, code }, "proxy worker exited; restarting it");
        setTimeout(() => {
          if (!this.stopping)
            this.spawn(index).catch((e: Error) => this.deps.log.error({ worker: index, err: e.message }, "proxy worker restart failed"));
        }, 500).unref();
      });
      if (this.tapListeners.size > 0) worker.postMessage({ type: "tap", enabled: true } satisfies ToWorker);
    });
  }

  private onMessage(slot: Slot, m: FromWorker): void {
    switch (m.type) {
      case "cert-request":
        this.deps.identity.certificate(m.identity).then(
          (cert) => slot.worker.postMessage({ type: "cert", reqId: m.reqId, cert } satisfies ToWorker),
          (e: Error) => slot.worker.postMessage({ type: "cert", reqId: m.reqId, error: e.message } satisfies ToWorker),
        );
        return;
      case "answer": {
        const p = this.pending.get(m.reqId);
        if (!p) return;
        p.results.push(m.data);
        if (--p.remaining === 0) {
          this.pending.delete(m.reqId);
          p.resolve(p.results);
        }
        return;
      }
      case "event":
        for (const l of this.tapListeners) l(m.event);
        return;
      default:
        return;
    }
  }

  private broadcast(m: ToWorker): void {
    for (const s of this.slots) s?.worker.postMessage(m);
  }

  /** Asks every live worker; answers from workers that do not reply within 2 s are left out. */
  private query(what: WorkerQuery): Promise<unknown[]> {
    const live = this.slots.filter((s) => s && !s.stopping);
    if (live.length === 0) return Promise.resolve([]);
    const reqId = this.nextReq++;
    return new Promise((resolve) => {
      const entry = { remaining: live.length, results: [] as unknown[], resolve };
      this.pending.set(reqId, entry);
      for (const s of live) s.worker.postMessage({ type: "query", reqId, what } satisfies ToWorker);
      setTimeout(() => {
        if (this.pending.delete(reqId)) resolve(entry.results);
      }, 2000).unref();
    });
  }

  async connections(): Promise<ConnectionSnapshot[]> {
    return ((await this.query("connections")) as ConnectionSnapshot[][]).flat();
  }

  async poolStats(): Promise<ProxyPoolStats> {
    const all = (await this.query("pool")) as { outbound: PoolStats[]; sessionsOpened: number; inboundSessions: number }[];
    return {
      outbound: all.flatMap((a) => a.outbound),
      sessionsOpened: all.reduce((n, a) => n + a.sessionsOpened, 0),
      inboundSessions: all.reduce((n, a) => n + a.inboundSessions, 0),
    };
  }

  async metrics(): Promise<MetricsJson[]> {
    return (await this.query("metrics")) as MetricsJson[];
  }

  onConnectionEvent(listener: (e: TapEvent) => void): () => void {
    this.tapListeners.add(listener);
    if (this.tapListeners.size === 1) this.broadcast({ type: "tap", enabled: true });
    return () => {
      this.tapListeners.delete(listener);
      if (this.tapListeners.size === 0) this.broadcast({ type: "tap", enabled: false });
    };
  }

  setLogLevel(level: string): void {
    this.logLevel = level;
    this.broadcast({ type: "log-level", level });
  }

  /** Drains every worker, then terminates any that did not finish in time. */
  async stop(drainMs = 5000): Promise<void> {
    this.stopping = true;
    for (const u of this.unsubscribe) u();
    await Promise.all(
      this.slots.filter(Boolean).map(
        (s) =>
          new Promise<void>((resolve) => {
            s.stopping = true;
            const kill = setTimeout(() => void s.worker.terminate().then(() => resolve()), drainMs + 2000);
            s.worker.once("exit", () => {
              clearTimeout(kill);
              resolve();
            });
            s.worker.postMessage({ type: "stop", drainMs } satisfies ToWorker);
          }),
      ),
    );
  }
}
