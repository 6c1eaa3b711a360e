/**
 * Leader election through a coordination.k8s.io/v1 Lease, for the controller's single-writer work
 * (Events today). Every replica serves xDS and signs CSRs whether it leads or not: leadership only
 * decides who writes. Expiry is judged by this replica's own clock from when it last saw the
 * Lease change (as client-go does), so clock skew between replicas cannot steal a live Lease;
 * writes carry the resourceVersion they read, so two candidates cannot both win.
 */
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { errorMessage } from "../../common/errors.js";
import type { Logger } from "../../common/log.js";
import { KubeApiError, type KubeClient } from "../sources/kube-client.js";

/** How long a Lease lasts without renewal, and how often candidates look. */
export interface LeaseTiming {
  durationMs: number;
  retryMs: number;
}

/** Takeover within 15 s of a leader's death: 10 s of Lease plus at most one 2 s retry. */
export const DEFAULT_LEASE_TIMING: LeaseTiming = { durationMs: 10_000, retryMs: 2_000 };

interface Lease {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

/** Runs the election loop; `isLeader` says whether this replica holds the Lease now. */
export class LeaseElector {
  /** This replica's identity in the Lease (pod name plus a per-process suffix). */
  readonly identity = `${hostname()}_${randomUUID().slice(0, 8)}`;
  private leader = false;
  private timer: NodeJS.Timeout | undefined;
  private observed: { version: string; at: number } | null = null;
  private stopped = false;
  private readonly listeners: ((leader: boolean) => void)[] = [];

  constructor(
    private readonly client: Pick<KubeClient, "request">,
    private readonly namespace: string,
    private readonly name: string,
    private readonly log: Logger,
    private readonly timing: LeaseTiming = DEFAULT_LEASE_TIMING,
    private readonly now: () => number = Date.now,
  ) {}

  /** True while this replica holds the Lease. */
  get isLeader(): boolean {
    return this.leader;
  }

  /** Calls fn on every change of leadership. */
  onChange(fn: (leader: boolean) => void): void {
    this.listeners.push(fn);
  }

  /** Starts trying (the first attempt is awaited, so a lone replica leads at once). */
  async start(): Promise<void> {
    await this.tick();
    this.schedule();
  }

  /**
   * Stops; a leader gives the Lease up (an empty holder) so another replica takes over at its next
   * look instead of waiting for expiry. `release: false` imitates a crash (tests).
   */
  async stop(release = true): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (release && this.leader) {
      try {
        const lease = await this.client.request<Lease>("GET", this.path());
        if (lease.spec?.holderIdentity === this.identity) {
          await this.client.request("PUT", this.path(), { ...lease, spec: { ...lease.spec, holderIdentity: "", leaseDurationSeconds: 1 } });
        }
      } catch (e) {
        this.log.warn({ err: errorMessage(e) }, "could not release the leader Lease; another replica takes over when it expires");
      }
    }
    this.set(false);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.tick().finally(() => this.schedule());
    }, this.timing.retryMs);
    this.timer.unref();
  }

  private path(): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(this.namespace)}/leases/${encodeURIComponent(this.name)}`;
  }

  private async tick(): Promise<void> {
    try {
      this.set(await this.tryAcquireOrRenew());
    } catch (e) {
      // Cannot tell whether we still hold it: a leader that cannot renew steps down before the
      // Lease could expire for the others.
      if (this.leader) this.log.error({ err: errorMessage(e) }, "cannot renew the leader Lease; stepping down");
      else this.log.debug({ err: errorMessage(e) }, "leader Lease unreadable");
      this.set(false);
    }
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = this.now();
    const spec = (transitions: number, acquire: string) => ({
      holderIdentity: this.identity,
      leaseDurationSeconds: Math.ceil(this.timing.durationMs / 1000),
      acquireTime: acquire,
      renewTime: new Date(now).toISOString().replace("Z", "000Z"),
      leaseTransitions: transitions,
    });
    let lease: Lease;
    try {
      lease = await this.client.request<Lease>("GET", this.path());
    } catch (e) {
      if (!(e instanceof KubeApiError && e.statusCode === 404)) throw e;
      const body: Lease = {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: { name: this.name, namespace: this.namespace },
        spec: spec(0, new Date(now).toISOString().replace("Z", "000Z")),
      };
      return this.write("POST", `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(this.namespace)}/leases`, body);
    }
    const version = lease.metadata.resourceVersion ?? "";
    if (this.observed?.version !== version) this.observed = { version, at: now };
    const holder = lease.spec?.holderIdentity ?? "";
    const mine = holder === this.identity;
    const durationMs = (lease.spec?.leaseDurationSeconds ?? 0) * 1000;
    const expired = holder === "" || now - this.observed.at >= durationMs;
    if (!mine && !expired) return false;
    const transitions = (lease.spec?.leaseTransitions ?? 0) + (mine ? 0 : 1);
    const acquire = mine && lease.spec?.acquireTime ? lease.spec.acquireTime : new Date(now).toISOString().replace("Z", "000Z");
    return this.write("PUT", this.path(), { ...lease, spec: spec(transitions, acquire) });
  }

  /** A write that loses a race (409) means another replica holds the Lease. */
  private async write(method: "POST" | "PUT", path: string, body: Lease): Promise<boolean> {
    try {
      const saved = await this.client.request<Lease>(method, path, body);
      this.observed = { version: saved.metadata?.resourceVersion ?? "", at: this.now() };
      return true;
    } catch (e) {
      if (e instanceof KubeApiError && e.statusCode === 409) return false;
      throw e;
    }
  }

  private set(leader: boolean): void {
    if (leader === this.leader) return;
    this.leader = leader;
    this.log.info({ identity: this.identity, lease: `${this.namespace}/${this.name}` }, leader ? "became leader" : "not the leader");
    for (const fn of this.listeners) fn(leader);
  }
}
