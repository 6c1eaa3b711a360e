/**
 * The agent's capture component: keeps the BPF maps in step with the mesh state. It reconciles
 * only once the state is synced, so a restarted agent that cannot reach its controller keeps the
 * pinned enrolment instead of wiping it with an empty set.
 */
import type { Logger } from "pino";
import { errorMessage } from "../../common/errors.js";
import { PASSTHROUGH_MARK } from "../../controller/api/constants.js";
import type { Workload } from "../../controller/api/model.js";
import { resolveHostInterface } from "../redirect/host-interface.js";
import { BpfRedirector } from "../redirect/redirector.js";
import type { ReconcileResult, RedirectConfig, RedirectStatus } from "../redirect/types.js";
import type { MeshState } from "../state/updater.js";
import type { ReadonlyWatch } from "../state/watch.js";
import { desiredRedirects } from "./desired.js";
import { applyNodeRules, renderNodeRules } from "./node-rules.js";
import { type CgroupLayout, PodCgroups } from "./pod-cgroups.js";

/** Capture settings. */
export interface CaptureOptions {
  redirect: RedirectConfig;
  layout: CgroupLayout;
  /** Named netns holding the pods' host veths when it is not the agent's own (tests). */
  netns?: string;
  /** Debounce between a state change and the reconcile. */
  debounceMs?: number;
  /**
   * The node's nftables capture and probe rules (node-rules.ts): the proxy's transparent HBONE
   * port on the proxy address (null: HBONE addressed to pod IPs is not captured). Unset: no rules.
   */
  nodeRules?: { hbonePort: number | null };
}

/** What the last reconcile did, for /status and `weft status`. */
export interface CaptureStatus {
  attached: boolean;
  synced: boolean;
  desired: number;
  lastReconcile?: { at: string; revision: number; result: ReconcileResult };
  unresolved: { pod: string; error: string }[];
}

/** Drives BpfRedirector from the state watch. */
export class CaptureComponent {
  readonly name = "redirect";
  readonly redirector: BpfRedirector;
  private readonly cgroups: PodCgroups;
  private readonly interfaces = new Map<string, string>();
  private unsubscribe?: () => void;
  private timer?: NodeJS.Timeout;
  private running = false;
  private again = false;
  private appliedRules = "";
  private last: CaptureStatus = { attached: false, synced: false, desired: 0, unresolved: [] };

  constructor(
    private readonly opts: CaptureOptions,
    private readonly state: ReadonlyWatch<MeshState>,
    private readonly log: Logger,
  ) {
    this.redirector = new BpfRedirector(opts.redirect, {
      log: (event, fields) => log.info({ scope: "redirect", ...fields }, event),
      ...(opts.netns ? { netnsPath: `/run/netns/${opts.netns}` } : {}),
    });
    this.cgroups = new PodCgroups(opts.redirect.podCgroupParent, opts.layout);
  }

  /** Attaches (or takes over pinned) programs, then follows the state. */
  async start(): Promise<void> {
    await this.redirector.start();
    this.last.attached = true;
    this.unsubscribe = this.state.subscribe(() => this.schedule());
    this.schedule();
  }

  private schedule(delay = this.opts.debounceMs ?? 20): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.sync();
    }, delay);
    this.timer.unref();
  }

  /** One reconcile pass; concurrent triggers coalesce into one more pass. */
  async sync(): Promise<void> {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    try {
      const st = this.state.get();
      this.last.synced = st.synced;
      if (!st.synced) return;
      const local = st.view.localWorkloads().filter((w) => w.enrolled);
      await this.resolveInterfaces(local);
      const desired = desiredRedirects(
        st.view,
        (w) => this.cgroups.resolve(w),
        (w) => this.interfaces.get(w.addresses[0] ?? "") ?? new Error(`host interface of ${w.addresses[0]} not found yet`),
      );
      const result = await this.redirector.reconcile(desired.pods);
      await this.syncNodeRules(desired.pods);
      this.last = {
        ...this.last,
        desired: desired.pods.length,
        unresolved: desired.unresolved,
        lastReconcile: { at: new Date().toISOString(), revision: st.revision, result },
      };
      if (result.failed.length || desired.unresolved.length) {
        this.log.warn(
          { scope: "redirect", failed: result.failed, unresolved: desired.unresolved },
          "some pods could not be captured; retrying",
        );
        this.schedule(1000);
      }
      if (result.enrolled.length || result.removed.length || result.updated.length) {
        this.log.info(
          { scope: "redirect", enrolled: result.enrolled.length, updated: result.updated.length, removed: result.removed.length },
          "capture updated",
        );
      }
    } catch (e) {
      this.log.error({ scope: "redirect", err: errorMessage(e) }, "capture reconcile failed; retrying");
      this.schedule(1000);
    } finally {
      this.running = false;
      if (this.again) {
        this.again = false;
        this.schedule();
      }
    }
  }

  /** Keeps the node's nftables table in step with the guarded pods (only when it changed). */
  private async syncNodeRules(pods: Parameters<typeof renderNodeRules>[0]["pods"]): Promise<void> {
    const nr = this.opts.nodeRules;
    if (!nr) return;
    const r = this.opts.redirect;
    const script = renderNodeRules({
      pods,
      proxyAddress: r.proxyAddress,
      plaintextPort: r.inboundPlaintextPort,
      hbonePort: nr.hbonePort,
      proxyMark: r.proxyMark,
      passthroughMark: PASSTHROUGH_MARK,
    });
    if (script === this.appliedRules) return;
    await applyNodeRules(script, this.opts.netns ?? null);
    this.appliedRules = script;
  }

  /** Looks up host veths of new pods (one `ip route get` each); keeps known ones. */
  private async resolveInterfaces(local: readonly Workload[]): Promise<void> {
    const ips = new Set(local.map((w) => w.addresses[0]).filter((a): a is string => Boolean(a)));
    for (const ip of this.interfaces.keys()) if (!ips.has(ip)) this.interfaces.delete(ip);
    this.cgroups.retain(new Set(local.map((w) => w.uid)));
    await Promise.all(
      [...ips]
        .filter((ip) => !this.interfaces.has(ip))
        .map(async (ip) => {
          try {
            this.interfaces.set(ip, await resolveHostInterface(ip, this.opts.netns ?? null));
          } catch {
            // reported as unresolved by desiredRedirects, retried on the next pass
          }
        }),
    );
  }

  /** True when programs are attached (readiness). */
  get attached(): boolean {
    return this.last.attached;
  }

  /** Status for /status. */
  status(): CaptureStatus & { bpf: Omit<RedirectStatus, "pods"> } {
    const { pods: _pods, ...bpf } = this.redirector.status();
    return { ...this.last, bpf };
  }

  /** Stops following state and lets go of fds; pins stay, so capture continues (fail closed). */
  stop(): void {
    this.unsubscribe?.();
    if (this.timer) clearTimeout(this.timer);
    this.redirector.close();
    this.last.attached = false;
  }
}
