/**
 * Passive health of one cluster's endpoints (Istio outlierDetection → Envoy outlier detection),
 * per worker: endpoints that fail in a row are ejected from balancing for a while.
 *
 * Invariants:
 * - Consecutive counters count only failures since the endpoint's last success; any response
 *   below 500 resets the 5xx and gateway counters (and, when split, the local-origin one).
 * - Local failures (connect failure, reset, refused stream, timeout) count as 5xx and gateway
 *   errors, as in Envoy with split_external_local_origin_errors false (its default). Istio turns
 *   splitting on when consecutiveLocalOriginFailures is set: they then count only there.
 * - Reaching a threshold attempts one ejection and restarts that counter, ejected or not.
 * - An ejection is refused when it would leave more than maxEjectionPercent of the cluster ejected,
 *   except that one endpoint may always be ejected when none is (Envoy's behaviour before 1.27,
 *   which later made it the opt-in always_eject_one_host; Istio's small pools rely on it).
 * - The n-th ejection in a row lasts baseEjectionTime × n, capped at max(300 s, base) (Envoy's
 *   max_ejection_time default); every interval an endpoint stays in service takes one off n.
 * - Ejection ends by time, evaluated lazily whenever the detector is consulted: an endpoint is back
 *   exactly when its ejection time has passed, not at the next interval tick.
 * - healthy() never returns an ejected endpoint unless fewer than minHealthPercent of the
 *   endpoints are healthy (panic): then it returns them all.
 */
import type { Endpoint, OutlierDetection } from "../../../controller/api/model.js";
import type { UpstreamOutcome } from "./outcome.js";

/** Envoy's max_ejection_time default (Istio does not expose it). */
const MAX_EJECTION_MS = 300_000;

interface Resolved {
  consecutive5xx: number;
  consecutiveGateway: number;
  /** > 0 turns on splitting of local-origin failures. */
  consecutiveLocal: number;
  intervalMs: number;
  baseEjectionMs: number;
  maxEjectionPercent: number;
  minHealthPercent: number;
}

/** Istio's defaults for a DestinationRule that sets outlierDetection. */
function resolve(s: OutlierDetection): Resolved {
  return {
    consecutive5xx: s.consecutive5xxErrors ?? 5,
    consecutiveGateway: s.consecutiveGatewayErrors ?? 0,
    consecutiveLocal: s.consecutiveLocalOriginFailures ?? 0,
    intervalMs: Math.max(1, s.intervalMs ?? 10_000),
    baseEjectionMs: s.baseEjectionTimeMs ?? 30_000,
    maxEjectionPercent: s.maxEjectionPercent ?? 10,
    minHealthPercent: s.minHealthPercent ?? 0,
  };
}

interface Monitor {
  consecutive5xx: number;
  consecutiveGateway: number;
  consecutiveLocal: number;
  /** Ejections in a row (the ejection-time multiplier). */
  multiplier: number;
  /** Ejections ever. */
  ejections: number;
  /** Set while ejected: when the ejection ends. */
  ejectedUntil?: number;
  /** While in service with multiplier > 0: since when the multiplier last decayed. */
  decayFrom: number;
}

/** One endpoint's outlier state, for the admin API and tests. */
export interface OutlierStat {
  address: string;
  ejected: boolean;
  ejections: number;
  consecutive5xx: number;
  consecutiveGateway: number;
}

/** Passive health of one cluster's endpoints (Istio outlierDetection → Envoy outlier detection). */
export class OutlierDetector {
  private cfg: Resolved;
  private readonly monitors = new Map<string, Monitor>();
  private lastEndpoints: readonly Endpoint[] | undefined;
  private clusterSize = 0;

  constructor(
    settings: OutlierDetection,
    private readonly now: () => number = Date.now,
  ) {
    this.cfg = resolve(settings);
  }

  /** Applies changed settings, keeping every endpoint's counters and ejections. */
  configure(settings: OutlierDetection): void {
    this.cfg = resolve(settings);
  }

  /** Records the outcome of one attempt on an endpoint. */
  record(address: string, outcome: UpstreamOutcome): void {
    const now = this.now();
    const m = this.monitor(address, now);
    const c = this.cfg;
    if (outcome.kind === "response") {
      if (outcome.status < 500) {
        m.consecutive5xx = 0;
        m.consecutiveGateway = 0;
        m.consecutiveLocal = 0;
        return;
      }
      m.consecutive5xx++;
      if (outcome.status === 502 || outcome.status === 503 || outcome.status === 504) m.consecutiveGateway++;
      else m.consecutiveGateway = 0;
      // The upstream answered: the connection itself works.
      m.consecutiveLocal = 0;
    } else if (c.consecutiveLocal > 0) {
      m.consecutiveLocal++;
    } else {
      m.consecutive5xx++;
      m.consecutiveGateway++;
    }
    if (c.consecutive5xx > 0 && m.consecutive5xx >= c.consecutive5xx) {
      m.consecutive5xx = 0;
      this.eject(m, now);
    } else if (c.consecutiveGateway > 0 && m.consecutiveGateway >= c.consecutiveGateway) {
      m.consecutiveGateway = 0;
      this.eject(m, now);
    } else if (c.consecutiveLocal > 0 && m.consecutiveLocal >= c.consecutiveLocal) {
      m.consecutiveLocal = 0;
      this.eject(m, now);
    }
  }

  /** Candidates not ejected, honouring maxEjectionPercent (at least one may always be ejected, as Envoy) and minHealthPercent (panic: below it, use all). */
  healthy(endpoints: readonly Endpoint[]): readonly Endpoint[] {
    if (endpoints !== this.lastEndpoints) this.track(endpoints);
    if (endpoints.length === 0) return endpoints;
    const now = this.now();
    let ejected = 0;
    for (const e of endpoints) if (this.isEjected(e.address, now)) ejected++;
    if (ejected === 0) return endpoints;
    const healthy = endpoints.filter((e) => !this.isEjected(e.address, now));
    if ((healthy.length * 100) / endpoints.length < this.cfg.minHealthPercent) return endpoints;
    return healthy;
  }

  /** Whether an endpoint is ejected now. */
  ejected(address: string): boolean {
    return this.isEjected(address, this.now());
  }

  /** Every known endpoint's state. */
  stats(): OutlierStat[] {
    const now = this.now();
    return [...this.monitors].map(([address, m]) => ({
      address,
      ejected: this.isEjected(address, now),
      ejections: m.ejections,
      consecutive5xx: m.consecutive5xx,
      consecutiveGateway: m.consecutiveGateway,
    }));
  }

  /** Follows the cluster's endpoint set: its size bounds ejections; departed endpoints are forgotten. */
  private track(endpoints: readonly Endpoint[]): void {
    this.lastEndpoints = endpoints;
    this.clusterSize = endpoints.length;
    if (endpoints.length === 0) return;
    const present = new Set(endpoints.map((e) => e.address));
    for (const address of this.monitors.keys()) if (!present.has(address)) this.monitors.delete(address);
  }

  private monitor(address: string, now: number): Monitor {
    let m = this.monitors.get(address);
    if (!m) {
      m = { consecutive5xx: 0, consecutiveGateway: 0, consecutiveLocal: 0, multiplier: 0, ejections: 0, decayFrom: now };
      this.monitors.set(address, m);
    }
    this.settle(m, now);
    return m;
  }

  /** Ends an expired ejection and decays the multiplier of an endpoint in service. */
  private settle(m: Monitor, now: number): void {
    if (m.ejectedUntil !== undefined) {
      if (now < m.ejectedUntil) return;
      m.decayFrom = m.ejectedUntil;
      m.ejectedUntil = undefined;
    }
    if (m.multiplier > 0) {
      const intervals = Math.floor((now - m.decayFrom) / this.cfg.intervalMs);
      if (intervals > 0) {
        m.multiplier = Math.max(0, m.multiplier - intervals);
        m.decayFrom += intervals * this.cfg.intervalMs;
      }
    }
  }

  private isEjected(address: string, now: number): boolean {
    const m = this.monitors.get(address);
    if (!m || m.ejectedUntil === undefined) return false;
    this.settle(m, now);
    return m.ejectedUntil !== undefined;
  }

  private eject(m: Monitor, now: number): void {
    if (m.ejectedUntil !== undefined) return;
    let active = 0;
    for (const [address] of this.monitors) if (this.isEjected(address, now)) active++;
    const size = Math.max(this.clusterSize, this.monitors.size);
    if (active > 0 && ((active + 1) * 100) / size > this.cfg.maxEjectionPercent) return;
    const c = this.cfg;
    const cap = Math.max(MAX_EJECTION_MS, c.baseEjectionMs);
    // The multiplier stops growing at the cap, so a recovered endpoint decays back in a few intervals.
    m.multiplier = Math.min(m.multiplier + 1, Math.max(1, Math.ceil(cap / Math.max(1, c.baseEjectionMs))));
    m.ejections++;
    m.ejectedUntil = now + Math.min(cap, c.baseEjectionMs * m.multiplier);
  }
}

/**
 * Per-worker outlier detectors by cluster key. Invariant: a key has a detector exactly while its
 * latest settings enable outlier detection; changed settings reconfigure it in place, so an edit
 * to an unrelated field does not return ejected endpoints to service.
 */
export class OutlierRegistry {
  private readonly byKey = new Map<string, { settings: OutlierDetection; detector: OutlierDetector }>();

  constructor(private readonly now: () => number = Date.now) {}

  /** The detector of a cluster; undefined when it has no outlierDetection. */
  forCluster(key: string, settings: OutlierDetection | undefined): OutlierDetector | undefined {
    const entry = this.byKey.get(key);
    if (!settings) {
      if (entry) this.byKey.delete(key);
      return undefined;
    }
    if (entry) {
      if (entry.settings !== settings) {
        entry.detector.configure(settings);
        entry.settings = settings;
      }
      return entry.detector;
    }
    const detector = new OutlierDetector(settings, this.now);
    this.byKey.set(key, { settings, detector });
    return detector;
  }

  /** Drops detectors of clusters not in `keys`. */
  retain(keys: ReadonlySet<string>): void {
    for (const key of this.byKey.keys()) if (!keys.has(key)) this.byKey.delete(key);
  }
}
