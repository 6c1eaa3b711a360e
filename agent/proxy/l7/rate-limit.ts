/**
 * Local rate limiting at the destination (RateLimitPolicy): token buckets per selected workload
 * (total) and per client identity (perClient, or the override naming that client). A request
 * takes a token from every bucket that applies; if any is empty it is refused (429, flag RL) and
 * takes none. Buckets live in each proxy worker; an idle bucket is forgotten.
 */
import type { RateLimit, RateLimitPolicy } from "../../../controller/api/model.js";

/** A token bucket: `rate` tokens a second, at most `burst` held; starts full. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.last = now;
  }

  /** Refills for the time passed since the last call; true when a whole token is there. */
  available(now: number): boolean {
    if (now > this.last) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rate);
      this.last = now;
    }
    return this.tokens >= 1;
  }

  /** Takes one token (call after available() said yes). */
  take(): void {
    this.tokens -= 1;
  }

  /** Last time the bucket was used (ms). */
  get lastUsed(): number {
    return this.last;
  }
}

/** Buckets idle this long are dropped (a full bucket behaves like a fresh one anyway after burst/rate). */
const IDLE_MS = 5 * 60 * 1000;

/** Principal form of a SPIFFE id ("cluster.local/ns/a/sa/b"). */
function principalOf(identity: string): string {
  return identity.startsWith("spiffe://") ? identity.slice("spiffe://".length) : identity;
}

/** The rate limiter of one proxy worker. */
export class RateLimiter {
  private readonly buckets = new Map<string, TokenBucket>();
  private sweptAt = 0;

  constructor(private readonly now: () => number = () => Date.now()) {}

  /**
   * Admits one request from `client` to workload `workloadUid` under the policies that apply;
   * returns the key of the policy whose bucket was empty, or undefined when admitted.
   */
  admit(policies: readonly RateLimitPolicy[], workloadUid: string, client: string): string | undefined {
    if (policies.length === 0) return undefined;
    const now = this.now();
    this.sweep(now);
    const principal = principalOf(client);
    const chosen: TokenBucket[] = [];
    for (const p of policies) {
      const id = `${p.key}|${workloadUid}`;
      if (p.total) chosen.push(this.bucket(`${id}|*`, p.total, now));
      const override = p.overrides.find((o) => o.clients.includes(principal));
      const per = override?.limit ?? p.perClient;
      if (per) chosen.push(this.bucket(`${id}|${override ? "o" : "c"}|${principal}`, per, now));
      for (const b of chosen) if (!b.available(now)) return p.key;
    }
    for (const b of chosen) b.take();
    return undefined;
  }

  private bucket(key: string, l: RateLimit, now: number): TokenBucket {
    const k = `${key}|${l.requestsPerSecond}|${l.burst}`;
    let b = this.buckets.get(k);
    if (!b) {
      b = new TokenBucket(l.requestsPerSecond, l.burst, now);
      this.buckets.set(k, b);
    }
    return b;
  }

  private sweep(now: number): void {
    if (now - this.sweptAt < IDLE_MS) return;
    this.sweptAt = now;
    for (const [k, b] of this.buckets) if (now - b.lastUsed > IDLE_MS) this.buckets.delete(k);
  }
}
