/** IdentitySource inside a proxy worker: certificates come from the main thread on request. */
import type { MessagePort } from "node:worker_threads";
import type { IdentitySource, WorkloadCertificate } from "../identity/types.js";
import type { FromWorker } from "./worker-protocol.js";

/** Caches certificates the main thread sends; asks for missing ones (one request per identity). */
export class WorkerIdentities implements IdentitySource {
  private readonly certs = new Map<string, WorkloadCertificate>();
  private readonly inflight = new Map<string, Promise<WorkloadCertificate>>();
  private readonly waiting = new Map<number, { resolve: (c: WorkloadCertificate) => void; reject: (e: Error) => void }>();
  private readonly listeners = new Set<() => void>();
  private nextId = 1;

  constructor(
    private readonly port: MessagePort,
    private bundle: string[],
  ) {}

  certificate(identity: string): Promise<WorkloadCertificate> {
    const hit = this.cached(identity);
    if (hit) return Promise.resolve(hit);
    let p = this.inflight.get(identity);
    if (!p) {
      p = new Promise<WorkloadCertificate>((resolve, reject) => {
        const reqId = this.nextId++;
        this.waiting.set(reqId, { resolve, reject });
        this.port.postMessage({ type: "cert-request", reqId, identity } satisfies FromWorker);
      }).finally(() => this.inflight.delete(identity));
      this.inflight.set(identity, p);
    }
    return p;
  }

  cached(identity: string): WorkloadCertificate | undefined {
    const c = this.certs.get(identity);
    return c && c.notAfter.getTime() > Date.now() ? c : undefined;
  }

  trustBundle(): readonly string[] {
    return this.bundle;
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The main thread answered a request. */
  answer(reqId: number, cert: WorkloadCertificate | undefined, error: string | undefined): void {
    const w = this.waiting.get(reqId);
    if (!w) return;
    this.waiting.delete(reqId);
    if (cert) {
      this.certs.set(cert.identity, cert);
      w.resolve(cert);
    } else {
      w.reject(new Error(error ?? "no certificate"));
    }
  }

  /** Certificates or the bundle changed: drop the cache (refetched on next use), tell listeners. */
  changed(bundle: string[]): void {
    this.bundle = bundle;
    this.certs.clear();
    for (const l of this.listeners) l();
  }
}
