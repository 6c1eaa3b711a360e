/**
 * Endpoint selection for one destination cluster (DestinationRule loadBalancer → Envoy's load
 * balancers), per worker.
 *
 * Invariants:
 * - pick() returns one of the candidates it was given, or undefined only when there are none.
 * - Addresses in `exclude` (hosts a retry already tried, Envoy's previous_hosts predicate) are
 *   skipped unless that leaves nothing, in which case every candidate is eligible again.
 * - In-flight counts only move through started()/finished() and never go below zero; a finished()
 *   without a matching started() (a balancer replaced mid-request) is ignored.
 * - A consistent-hash key maps to the same endpoint for as long as that endpoint is a candidate:
 *   the ring depends only on the candidate set, never on request order or in-flight counts.
 * - All state lives in the instance (one per cluster per worker); nothing is global.
 *
 * Default: Istio has balanced with LEAST_REQUEST when `simple` is unset or UNSPECIFIED since 1.14
 * (ROUND_ROBIN before); weft follows the current default.
 */
import { randomBytes } from "node:crypto";
import type { Endpoint, LoadBalancerSettings } from "../../../controller/api/model.js";
import { HashRing, hash32 } from "./hash-ring.js";

/** What a balancer may look at in a request. */
export interface BalanceContext {
  /** Request headers, lower-case names. */
  headers: Readonly<Record<string, string | string[] | undefined>>;
  sourceIp: string;
  /** Raw query string without "?". */
  query: string;
}

/** The chosen endpoint. */
export interface Picked {
  endpoint: Endpoint;
  /** Set-Cookie value to add to the response when a consistent-hash cookie with a ttl was generated. */
  setCookie?: string;
}

/** Chooses endpoints for one cluster. */
export interface Balancer {
  /** Picks among candidates (already filtered for ejection); skips addresses in `exclude` (hosts a retry already tried) unless that leaves none. */
  pick(candidates: readonly Endpoint[], ctx: BalanceContext, exclude?: ReadonlySet<string>): Picked | undefined;
  /** A request started on an endpoint (LEAST_REQUEST counts active requests). */
  started(address: string): void;
  /** A request finished on an endpoint. */
  finished(address: string): void;
  /** Requests in flight on an endpoint, as counted through started/finished. */
  inFlight(address: string): number;
}

/** Source of uniform numbers in [0, 1). */
export type Random = () => number;

function eligible(candidates: readonly Endpoint[], exclude: ReadonlySet<string> | undefined): readonly Endpoint[] {
  if (!exclude || exclude.size === 0) return candidates;
  const rest = candidates.filter((e) => !exclude.has(e.address));
  return rest.length > 0 ? rest : candidates;
}

function index(random: Random, n: number): number {
  return Math.min(n - 1, Math.floor(random() * n));
}

abstract class CountingBalancer implements Balancer {
  private readonly active = new Map<string, number>();

  constructor(protected readonly random: Random) {}

  abstract pick(candidates: readonly Endpoint[], ctx: BalanceContext, exclude?: ReadonlySet<string>): Picked | undefined;

  started(address: string): void {
    this.active.set(address, (this.active.get(address) ?? 0) + 1);
  }

  finished(address: string): void {
    const n = this.active.get(address);
    if (n === undefined) return;
    if (n <= 1) this.active.delete(address);
    else this.active.set(address, n - 1);
  }

  inFlight(address: string): number {
    return this.active.get(address) ?? 0;
  }
}

/** ROUND_ROBIN: candidates in turn, starting at a random offset so workers do not move in lockstep. */
class RoundRobinBalancer extends CountingBalancer {
  private next: number;

  constructor(random: Random) {
    super(random);
    this.next = Math.floor(random() * 0x7fffffff);
  }

  pick(candidates: readonly Endpoint[], _ctx: BalanceContext, exclude?: ReadonlySet<string>): Picked | undefined {
    const list = eligible(candidates, exclude);
    if (list.length === 0) return undefined;
    const endpoint = list[this.next % list.length] as Endpoint;
    this.next = (this.next + 1) % 0x7fffffff;
    return { endpoint };
  }
}

/** RANDOM (and PASSTHROUGH, see forSettings): a uniformly random candidate. */
class RandomBalancer extends CountingBalancer {
  pick(candidates: readonly Endpoint[], _ctx: BalanceContext, exclude?: ReadonlySet<string>): Picked | undefined {
    const list = eligible(candidates, exclude);
    if (list.length === 0) return undefined;
    return { endpoint: list[index(this.random, list.length)] as Endpoint };
  }
}

/** LEAST_REQUEST: power of two choices (Envoy's choice_count 2): two distinct random candidates, the less busy wins. */
class LeastRequestBalancer extends CountingBalancer {
  pick(candidates: readonly Endpoint[], _ctx: BalanceContext, exclude?: ReadonlySet<string>): Picked | undefined {
    const list = eligible(candidates, exclude);
    if (list.length === 0) return undefined;
    if (list.length === 1) return { endpoint: list[0] as Endpoint };
    const i = index(this.random, list.length);
    let j = index(this.random, list.length - 1);
    if (j >= i) j++;
    const a = list[i] as Endpoint;
    const b = list[j] as Endpoint;
    return { endpoint: this.inFlight(b.address) < this.inFlight(a.address) ? b : a };
  }
}

type HashSettings = NonNullable<LoadBalancerSettings["consistentHash"]>;

function headerValue(v: string | string[] | undefined): string | undefined {
  if (v === undefined) return undefined;
  return Array.isArray(v) ? (v.length ? v.join(",") : undefined) : v;
}

/** Value of one cookie in the request's Cookie header(s); undefined when absent. */
export function cookieValue(header: string | string[] | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const line of Array.isArray(header) ? header : [header]) {
    for (const part of line.split(";")) {
      const eq = part.indexOf("=");
      if (eq < 0) continue;
      if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
    }
  }
  return undefined;
}

/** Most recent rings kept per balancer: candidate sets alternate as endpoints are ejected and return. */
const RING_CACHE = 4;

/**
 * consistentHash: a ring over the candidates, keyed by a header, a cookie, the source IP or a
 * query parameter. A request without the key goes to a random candidate, as Envoy does when the
 * hash policy yields no hash; a missing cookie with a ttl is generated and returned in setCookie.
 */
class ConsistentHashBalancer extends CountingBalancer {
  private readonly rings = new Map<string, HashRing>();

  constructor(
    random: Random,
    private readonly hash: HashSettings,
  ) {
    super(random);
  }

  pick(candidates: readonly Endpoint[], ctx: BalanceContext, exclude?: ReadonlySet<string>): Picked | undefined {
    if (candidates.length === 0) return undefined;
    const { key, setCookie } = this.key(ctx);
    if (key === undefined) {
      const list = eligible(candidates, exclude);
      return { endpoint: list[index(this.random, list.length)] as Endpoint };
    }
    let chosen: string | undefined;
    for (const address of this.ring(candidates).walk(hash32(key))) {
      chosen ??= address;
      if (!exclude?.has(address)) {
        chosen = address;
        break;
      }
    }
    const endpoint = candidates.find((e) => e.address === chosen) ?? (candidates[0] as Endpoint);
    return setCookie === undefined ? { endpoint } : { endpoint, setCookie };
  }

  private key(ctx: BalanceContext): { key?: string; setCookie?: string } {
    const h = this.hash;
    if (h.header !== undefined) return { key: headerValue(ctx.headers[h.header]) };
    if (h.sourceIp) return { key: ctx.sourceIp || undefined };
    if (h.queryParameter !== undefined) return { key: new URLSearchParams(ctx.query).get(h.queryParameter) ?? undefined };
    if (h.cookie) {
      const found = cookieValue(ctx.headers.cookie, h.cookie.name);
      if (found !== undefined) return { key: found };
      // Istio: with a ttl the proxy generates the cookie (ttl 0 → a session cookie); without one, no affinity.
      if (h.cookie.ttlMs === undefined) return {};
      const value = randomBytes(8).toString("hex");
      let cookie = `${h.cookie.name}=${value}`;
      if (h.cookie.path) cookie += `; Path=${h.cookie.path}`;
      if (h.cookie.ttlMs > 0) cookie += `; Max-Age=${Math.ceil(h.cookie.ttlMs / 1000)}`;
      return { key: value, setCookie: `${cookie}; HttpOnly` };
    }
    return {};
  }

  private ring(candidates: readonly Endpoint[]): HashRing {
    const id = candidates
      .map((e) => e.address)
      .sort()
      .join(",");
    let ring = this.rings.get(id);
    if (ring) {
      this.rings.delete(id);
    } else {
      ring = new HashRing(candidates.map((e) => e.address));
      if (this.rings.size >= RING_CACHE) this.rings.delete(this.rings.keys().next().value as string);
    }
    this.rings.set(id, ring);
    return ring;
  }
}

/** A fresh balancer for a cluster's settings (undefined: Istio's default, LEAST_REQUEST). */
export function createBalancer(settings: LoadBalancerSettings | undefined, random: Random = Math.random): Balancer {
  if (settings?.consistentHash) return new ConsistentHashBalancer(random, settings.consistentHash);
  switch (settings?.simple) {
    case "ROUND_ROBIN":
      return new RoundRobinBalancer(random);
    case "RANDOM":
      return new RandomBalancer(random);
    case "PASSTHROUGH":
      // Envoy's ORIGINAL_DST sends to the address the client dialled; here the client dialled a
      // service and the candidates are its endpoints, so there is no single original host: random.
      return new RandomBalancer(random);
    default:
      return new LeastRequestBalancer(random);
  }
}

/**
 * Per-worker balancers by cluster key. Invariant: a key's balancer was built from the settings
 * last passed for it; changed settings (compared by value) get a fresh balancer.
 */
export class BalancerRegistry {
  private readonly byKey = new Map<string, { settings: LoadBalancerSettings | undefined; sig: string; balancer: Balancer }>();

  constructor(private readonly random: Random = Math.random) {}

  /** The balancer for a cluster, created or replaced when its settings changed. */
  forCluster(key: string, settings: LoadBalancerSettings | undefined): Balancer {
    const entry = this.byKey.get(key);
    // Snapshots are immutable: the same object means the same settings, without serialising.
    if (entry && entry.settings === settings) return entry.balancer;
    const sig = JSON.stringify(settings ?? null);
    if (entry && entry.sig === sig) {
      entry.settings = settings;
      return entry.balancer;
    }
    const balancer = createBalancer(settings, this.random);
    this.byKey.set(key, { settings, sig, balancer });
    return balancer;
  }

  /** Drops balancers of clusters not in `keys` (call after a snapshot change). */
  retain(keys: ReadonlySet<string>): void {
    for (const key of this.byKey.keys()) if (!keys.has(key)) this.byKey.delete(key);
  }
}
