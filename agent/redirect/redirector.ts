/**
 * BpfRedirector, the Redirector the agent uses: the only writer of weft's BPF maps. start()
 * loads (or takes over pinned) programs and maps, reconcile() makes the maps match the desired
 * pods, close() lets go of fds while pins keep capture running, uninstall() removes everything.
 */
import { statSync } from "node:fs";
import { cgroupId } from "../../native/cgroup.js";
import { MAP_TYPE } from "./abi.js";
import { formatExclude, parseExclude, syncExcludes } from "./exclude.js";
import { GuardLinks } from "./guard-links.js";
import { type Installed, type InstallLog, install } from "./install.js";
import { PinDirLock } from "./lock.js";
import { removeAllPins } from "./pins.js";
import { type PreflightPaths, preflight } from "./preflight.js";
import { GUARD } from "./programs.js";
import { applyMaps, type KnownPod, plan, podProblems, type ResolvedPod, readCurrent } from "./reconciler.js";
import { readStats } from "./stats.js";
import type { PodRedirect, ReconcileResult, RedirectConfig, Redirector, RedirectStatus } from "./types.js";

/** Options beyond RedirectConfig. */
export interface RedirectorOptions {
  /** Structured log sink (the agent's logger); default: nothing. */
  log?: InstallLog;
  /** netns (path) holding the pods' host veths when it is not this process's. */
  netnsPath?: string;
  /** Where preflight looks (tests inject fixtures). */
  preflightPaths?: PreflightPaths;
}

/** What start() found and did, for logs and tests. */
export interface StartReport {
  /** Hooks whose pinned link got the new program (a restart), by program name. */
  swapped: string[];
  /** Hooks attached afresh. */
  created: string[];
  /** Reason pinned state was replaced (another ABI), or null. */
  replaced: string | null;
}

/** Redirect through eBPF, pinned under cfg.pinDir. */
export class BpfRedirector implements Redirector {
  private installed: Installed | null = null;
  private guards: GuardLinks | null = null;
  private lock: PinDirLock | null = null;
  private known = new Map<string, KnownPod>();
  private applied: PodRedirect[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  private readonly log: InstallLog;
  /** Set by start(). */
  lastStart: StartReport | null = null;

  constructor(
    readonly config: RedirectConfig,
    private readonly opts: RedirectorOptions = {},
  ) {
    this.log = opts.log ?? (() => undefined);
    for (const e of config.excluded) parseExclude(e); // reject bad config before touching the kernel
  }

  /** Loads or takes over programs and maps, attaches them, applies the exclusions. */
  async start(): Promise<void> {
    if (this.installed) return;
    preflight(this.config, this.opts.preflightPaths);
    this.lock = PinDirLock.acquire(this.config.pinDir);
    try {
      const inst = install(this.config, this.log);
      this.installed = inst;
      syncExcludes(inst.maps.exclude, this.config.excluded);
      this.guards = new GuardLinks(this.config.pinDir, inst.guardProgram.fd, this.opts.netnsPath ?? null);
      this.guards.adoptPinned();
      this.lastStart = {
        swapped: inst.hooks.filter((h) => h.how === "swapped").map((h) => h.hook.program),
        created: inst.hooks.filter((h) => h.how === "created").map((h) => h.hook.program),
        replaced: inst.replaced,
      };
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /** Makes the maps (and guard links) match exactly this set of local pods; serialised. */
  reconcile(desired: readonly PodRedirect[]): Promise<ReconcileResult> {
    const run = this.queue.then(() => this.reconcileNow(desired));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private reconcileNow(desired: readonly PodRedirect[]): ReconcileResult {
    const inst = this.requireStarted();
    const guards = this.guards as GuardLinks;
    const failed: ReconcileResult["failed"] = [];
    const resolved: ResolvedPod[] = [];
    const seenUid = new Set<string>();
    const seenIp = new Map<string, string>();
    for (const pod of desired) {
      const problems = podProblems(pod);
      if (seenUid.has(pod.uid)) problems.push(`uid ${pod.uid} appears twice in the desired set`);
      const ipOwner = seenIp.get(pod.ip);
      if (ipOwner !== undefined) problems.push(`ip ${pod.ip} is also pod ${ipOwner}'s`);
      if (problems.length > 0) {
        failed.push({ uid: pod.uid ?? "(no uid)", error: `${pod.namespace}/${pod.name}: ${problems.join("; ")}` });
        continue;
      }
      seenUid.add(pod.uid);
      seenIp.set(pod.ip, pod.uid);
      try {
        if (!statSync(pod.cgroupPath).isDirectory()) throw new Error("not a directory");
        const cg = cgroupId(pod.cgroupPath);
        const ifindex = pod.inbound === "off" ? null : guards.ensure(pod.hostInterface);
        resolved.push({ pod, cgroupId: cg, ifindex });
      } catch (e) {
        failed.push({ uid: pod.uid, error: `${pod.namespace}/${pod.name}: ${describe(e, pod)}` });
      }
    }
    const failedUids = new Set(failed.map((f) => f.uid));
    const protect = { cgroupIds: new Set<bigint>(), ips: new Set<string>() };
    for (const uid of failedUids) {
      const k = this.known.get(uid);
      if (k) {
        protect.cgroupIds.add(k.cgroupId);
        protect.ips.add(k.ip);
      }
    }
    const p = plan(resolved, readCurrent(inst.maps.pods, inst.maps.guard), this.known, protect);
    applyMaps(p, inst.maps.pods, inst.maps.guard);
    guards.removeExcept(p.guardIfindexes);

    const known = new Map<string, KnownPod>();
    for (const r of resolved) known.set(r.pod.uid, { cgroupId: r.cgroupId, ip: r.pod.ip });
    for (const uid of failedUids) {
      const k = this.known.get(uid);
      if (k) known.set(uid, k);
    }
    this.known = known;
    const keptFailed = this.applied.filter((a) => failedUids.has(a.uid));
    this.applied = [...resolved.map((r) => ({ ...r.pod })), ...keptFailed];
    const result = { enrolled: p.enrolled, updated: p.updated, removed: p.removed, failed };
    this.log("reconciled", { desired: desired.length, ...countsOf(result) });
    return result;
  }

  /** Programs, links, maps and the applied pods. */
  status(): RedirectStatus {
    const inst = this.installed;
    if (!inst) return { attached: false, programs: [], maps: [], pods: [] };
    const programs = inst.hooks.map((h) => {
      const info = h.link.info();
      return { name: h.hook.program, id: info.progId, attachedTo: `cgroup ${h.cgroup}` };
    });
    for (const g of this.guards?.list() ?? [])
      programs.push({ name: GUARD.program, id: g.progId, attachedTo: `ifindex ${g.ifindex} tcx egress` });
    const maps = Object.values(inst.maps).map((m) => {
      const info = m.info();
      // Arrays and socket storage have no key set worth walking: report their size.
      const sized = info.type === MAP_TYPE.SK_STORAGE || info.type === MAP_TYPE.PERCPU_ARRAY || info.type === MAP_TYPE.ARRAY;
      return { name: info.name, id: info.id, entries: sized ? info.maxEntries : m.count(info.keySize) };
    });
    return { attached: true, programs, maps, pods: this.applied.map((p) => ({ ...p })) };
  }

  /** Decision counters by reason. */
  stats(): Record<string, number> {
    return readStats(this.requireStarted().maps.stats);
  }

  /** The exclusions in force (canonical text). */
  excluded(): string[] {
    return this.config.excluded.map((e) => formatExclude(parseExclude(e)));
  }

  /** Releases every fd and the lock; pins stay, so capture continues (failing closed) meanwhile. */
  close(): void {
    this.releaseFds();
    this.lock?.release();
    this.lock = null;
  }

  /** Detaches every program and removes every pin of this pin directory. */
  async uninstall(): Promise<void> {
    await this.queue;
    this.releaseFds();
    const lock = this.lock ?? PinDirLock.acquire(this.config.pinDir);
    this.lock = null;
    try {
      removeAllPins(this.config.pinDir);
    } finally {
      lock.release();
    }
    this.applied = [];
    this.known.clear();
  }

  private releaseFds(): void {
    this.guards?.close();
    this.guards = null;
    if (this.installed) {
      for (const h of this.installed.hooks) h.link.close();
      for (const m of Object.values(this.installed.maps)) m.close();
      for (const o of this.installed.objects.values()) o.close();
      this.installed = null;
    }
  }

  private requireStarted(): Installed {
    if (!this.installed) throw new Error("redirect is not started: call start() first");
    return this.installed;
  }
}

function describe(e: unknown, pod: PodRedirect): string {
  const err = e as NodeJS.ErrnoException;
  if (err.code === "ENOENT" && err.syscall === "stat")
    return `cgroup ${pod.cgroupPath} does not exist (pod gone, or a wrong --pod-cgroup-parent)`;
  return err.message ?? String(e);
}

function countsOf(r: ReconcileResult): Record<string, number> {
  return { enrolled: r.enrolled.length, updated: r.updated.length, removed: r.removed.length, failed: r.failed.length };
}
