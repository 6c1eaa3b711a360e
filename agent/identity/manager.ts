/**
 * The identity manager: one certificate per service account that has a pod on this node.
 * Fetched when such a pod appears (concurrent requests share one fetch), cached, renewed at half
 * life with jitter (and early after a root rotation), dropped when the node's last pod of that
 * service account goes. The ECDSA P-256 key is made here and never leaves the node. While the CA
 * is unreachable, cached certificates keep being served until they expire.
 */
import { generateKeyPairSync, X509Certificate } from "node:crypto";
import { Backoff } from "../../common/backoff.js";
import { errorMessage } from "../../common/errors.js";
import type { Logger } from "../../common/log.js";
import { createCsr } from "../../common/pki/csr.js";
import { fingerprint256, uriSans } from "../../common/pki/x509.js";
import type { MeshState } from "../state/updater.js";
import type { ReadonlyWatch } from "../state/watch.js";
import type { CertificateIssuer } from "./issuer.js";
import type { IdentitySource, WorkloadCertificate } from "./types.js";

/** Options of the manager. */
export interface IdentityManagerOptions {
  issuer: CertificateIssuer;
  state: ReadonlyWatch<MeshState>;
  log: Logger;
  /** Lifetime to ask for (0: the CA's default). */
  ttlSeconds?: number;
  /** Renew when this share of the lifetime has passed (default 0.5). */
  renewFraction?: number;
  /** Renew up to this share earlier, at random, so certificates do not all renew at once (default 0.1). */
  jitter?: number;
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** After a signing-root change, re-issue within this window (default 30 s). */
  rotationSpreadMs?: number;
}

interface Entry {
  identity: string;
  cert?: WorkloadCertificate;
  /** SHA-256 of the root the CA signed under. */
  signedBy?: string;
  fetching?: Promise<WorkloadCertificate>;
  timer?: NodeJS.Timeout;
  renewAt?: Date;
  backoff: Backoff;
  lastError?: string;
  issuedCount: number;
}

/** Certificate status as the admin API shows it. */
export interface CertificateStatus {
  identity: string;
  state: "valid" | "pending" | "failing" | "expired";
  serial?: string;
  notBefore?: string;
  notAfter?: string;
  renewAt?: string;
  secondsToRenewal?: number;
  issued: number;
  lastError?: string;
}

const MAX_TIMER_MS = 2 ** 31 - 1;

/** A certificate the manager holds, with the root it was signed under (what is persisted). */
export interface HeldCertificate {
  cert: WorkloadCertificate;
  /** SHA-256 of the root the CA signed under. */
  signedBy: string;
}

/** Issues and renews the node's workload certificates. */
export class IdentityManager implements IdentitySource {
  private readonly entries = new Map<string, Entry>();
  private readonly listeners = new Set<() => void>();
  private lastRoots: string[] = [];
  private bundleFp = "";
  private unsubscribe: (() => void) | undefined;
  private stopped = false;

  constructor(private readonly opts: IdentityManagerOptions) {}

  /** Follows the mesh state: fetches for new local identities, drops gone ones. */
  start(): void {
    this.stopped = false;
    this.reconcile(this.opts.state.get());
    this.unsubscribe = this.opts.state.subscribe((s) => this.reconcile(s));
  }

  /**
   * Seeds certificates saved by an earlier run (already checked: identity, key, not expired), before
   * start(): they are served at once and renewed on their usual schedule. Identities no local pod
   * runs as are dropped by start() like any other.
   */
  restore(held: readonly HeldCertificate[]): void {
    for (const h of held) {
      const e: Entry = {
        identity: h.cert.identity,
        cert: h.cert,
        signedBy: h.signedBy,
        backoff: new Backoff(this.opts.retryInitialMs ?? 1000, this.opts.retryMaxMs ?? 30_000),
        issuedCount: 0,
      };
      this.entries.set(e.identity, e);
      this.scheduleRenewal(e);
    }
    if (held.length) this.emit();
  }

  /** The certificates held and not expired (what the agent persists). */
  held(): HeldCertificate[] {
    const now = Date.now();
    return [...this.entries.values()].flatMap((e) =>
      e.cert && e.cert.notAfter.getTime() > now ? [{ cert: e.cert, signedBy: e.signedBy ?? "" }] : [],
    );
  }

  /** Stops renewing. */
  stop(): void {
    this.stopped = true;
    this.unsubscribe?.();
    for (const e of this.entries.values()) if (e.timer) clearTimeout(e.timer);
    this.opts.issuer.close();
  }

  private localIdentities(s: MeshState): { enrolled: Set<string>; all: Set<string> } {
    const enrolled = new Set<string>();
    const all = new Set<string>();
    for (const w of s.view.localWorkloads()) {
      all.add(w.identity);
      if (w.enrolled) enrolled.add(w.identity);
    }
    return { enrolled, all };
  }

  private reconcile(s: MeshState): void {
    if (this.stopped) return;
    const { enrolled, all } = this.localIdentities(s);
    for (const id of enrolled) if (!this.entries.has(id)) void this.certificate(id).catch(() => undefined);
    let changed = false;
    for (const [id, e] of this.entries) {
      if (enrolled.has(id)) continue;
      if (e.timer) clearTimeout(e.timer);
      this.entries.delete(id);
      changed = true;
      this.opts.log.info(
        { identity: id },
        all.has(id)
          ? "no pod in the mesh on this node runs as this identity any more; certificate dropped"
          : "no pod on this node runs as this identity any more; certificate dropped",
      );
    }
    const fp = s.trustBundle?.signingRootSha256 ?? "";
    if (fp !== this.bundleFp) {
      const first = this.bundleFp === "";
      this.bundleFp = fp;
      changed = true;
      if (!first) this.onSigningRootChange(fp);
    }
    if (changed) this.emit();
  }

  /** After a rotation, certificates signed under another root are re-issued soon (spread out). */
  private onSigningRootChange(fp: string): void {
    for (const e of this.entries.values()) {
      if (!e.cert || e.signedBy === fp) continue;
      const delay = Math.random() * (this.opts.rotationSpreadMs ?? 30_000);
      this.opts.log.info({ identity: e.identity, inMs: Math.round(delay) }, "the CA signs under a new root; re-issuing");
      this.schedule(e, delay);
    }
  }

  /** The certificate for a local identity (fetched on first use; concurrent calls share one fetch). */
  certificate(identity: string): Promise<WorkloadCertificate> {
    const cached = this.cached(identity);
    if (cached) return Promise.resolve(cached);
    const { enrolled } = this.localIdentities(this.opts.state.get());
    if (!enrolled.has(identity))
      return Promise.reject(new Error(`no pod in the mesh on this node runs as ${identity}; the CA would refuse it`));
    let e = this.entries.get(identity);
    if (!e) {
      e = { identity, backoff: new Backoff(this.opts.retryInitialMs ?? 1000, this.opts.retryMaxMs ?? 30_000), issuedCount: 0 };
      this.entries.set(identity, e);
    }
    return this.fetch(e);
  }

  private fetch(e: Entry): Promise<WorkloadCertificate> {
    if (e.fetching) return e.fetching;
    const p = this.issue(e.identity)
      .then(({ cert, signedBy }) => {
        e.cert = cert;
        e.signedBy = signedBy;
        e.lastError = undefined;
        e.issuedCount++;
        e.backoff.reset();
        this.scheduleRenewal(e);
        this.opts.log.info(
          { identity: e.identity, serial: cert.serial, notAfter: cert.notAfter.toISOString(), renewAt: e.renewAt?.toISOString() },
          "certificate issued",
        );
        this.emit();
        return cert;
      })
      .catch((err: Error) => {
        e.lastError = err.message;
        const delay = e.backoff.next();
        const validUntil = e.cert?.notAfter.getTime() ?? 0;
        this.opts.log.warn(
          { identity: e.identity, retryInMs: delay, cachedValidUntil: validUntil ? new Date(validUntil).toISOString() : undefined },
          `certificate request failed: ${err.message}`,
        );
        if (this.entries.get(e.identity) === e) this.schedule(e, delay);
        throw err;
      })
      .finally(() => {
        e.fetching = undefined;
      });
    e.fetching = p;
    return p;
  }

  private schedule(e: Entry, delayMs: number): void {
    if (this.stopped) return;
    if (e.timer) clearTimeout(e.timer);
    e.renewAt = new Date(Date.now() + delayMs);
    e.timer = setTimeout(
      () => {
        e.timer = undefined;
        if (this.entries.get(e.identity) === e) void this.fetch(e).catch(() => undefined);
      },
      Math.min(MAX_TIMER_MS, Math.max(0, delayMs)),
    );
    e.timer.unref();
  }

  private scheduleRenewal(e: Entry): void {
    const cert = e.cert as WorkloadCertificate;
    const now = Date.now();
    const life = cert.notAfter.getTime() - now;
    const fraction = (this.opts.renewFraction ?? 0.5) - Math.random() * (this.opts.jitter ?? 0.1);
    this.schedule(e, Math.max(0, life * fraction));
  }

  private async issue(identity: string): Promise<{ cert: WorkloadCertificate; signedBy: string }> {
    const keys = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    const csr = createCsr(identity, keys);
    const res = await this.opts.issuer.issue(identity, csr, this.opts.ttlSeconds ?? 0);
    const leafPem = res.chain[0];
    if (!leafPem) throw new Error("the CA returned no certificate");
    const leaf = new X509Certificate(leafPem);
    if (!uriSans(leaf).includes(identity))
      throw new Error(`the CA returned a certificate for ${uriSans(leaf).join(", ") || "no SPIFFE id"}, not ${identity}`);
    if (!leaf.checkPrivateKey(keys.privateKey)) throw new Error("the CA returned a certificate for another key");
    const chain = res.chain.map((p) => new X509Certificate(p));
    const roots = res.roots.map((p) => new X509Certificate(p));
    const top = chain[chain.length - 1] as X509Certificate;
    const root = roots.find((r) => top.checkIssued(r) && top.verify(r.publicKey));
    if (!root) throw new Error("the certificate does not chain to any root the CA returned");
    this.lastRoots = res.roots;
    return {
      signedBy: fingerprint256(root),
      cert: {
        identity,
        certChainPem: res.chain.join(""),
        keyPem: keys.privateKey.export({ type: "pkcs8", format: "pem" }) as string,
        serial: leaf.serialNumber,
        notBefore: new Date(leaf.validFrom),
        notAfter: new Date(leaf.validTo),
      },
    };
  }

  /** The cached certificate, if held and not expired. */
  cached(identity: string): WorkloadCertificate | undefined {
    const c = this.entries.get(identity)?.cert;
    return c && c.notAfter.getTime() > Date.now() ? c : undefined;
  }

  /** Trusted roots: the pushed bundle (old and new during a rotation), else the CA's last answer. */
  trustBundle(): readonly string[] {
    return this.opts.state.get().trustBundle?.rootsPem ?? this.lastRoots;
  }

  /** Called after any certificate or the bundle changes. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(): void {
    for (const l of [...this.listeners]) {
      try {
        l();
      } catch (e) {
        this.opts.log.error({ err: errorMessage(e) }, "identity listener failed");
      }
    }
  }

  /** Per-identity state for the admin API. */
  status(): CertificateStatus[] {
    const now = Date.now();
    return [...this.entries.values()]
      .map((e): CertificateStatus => {
        const c = e.cert;
        const state = !c
          ? e.lastError
            ? "failing"
            : "pending"
          : c.notAfter.getTime() <= now
            ? "expired"
            : e.lastError
              ? "failing"
              : "valid";
        const s: CertificateStatus = { identity: e.identity, state, issued: e.issuedCount };
        if (c) Object.assign(s, { serial: c.serial, notBefore: c.notBefore.toISOString(), notAfter: c.notAfter.toISOString() });
        if (e.renewAt)
          Object.assign(s, {
            renewAt: e.renewAt.toISOString(),
            secondsToRenewal: Math.max(0, Math.round((e.renewAt.getTime() - now) / 1000)),
          });
        if (e.lastError) s.lastError = e.lastError;
        return s;
      })
      .sort((a, b) => a.identity.localeCompare(b.identity));
  }
}
