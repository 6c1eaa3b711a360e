/**
 * A consistent-hash ring (Karger et al., as Envoy's RING_HASH): each endpoint owns many points on
 * a 32-bit circle and a key belongs to the first point at or after its hash.
 *
 * Invariants:
 * - An endpoint's points depend only on its address, never on the other endpoints or their count,
 *   so removing one endpoint of N moves exactly the keys it owned (≈1/N) and adding one moves
 *   ≈1/(N+1), all to it. (Envoy sizes its ring to minimumRingSize and spreads it over the hosts,
 *   which reshuffles some keys among the survivors; weft keeps the per-endpoint count fixed.)
 * - Every endpoint owns POINTS_PER_HOST points: shares stay within a few percent of equal, and
 *   from four endpoints up the ring has Istio's default minimumRingSize (1024) or more.
 * - Points are sorted ascending; equal hashes (rare 32-bit collisions) are ordered by address so
 *   the owner of a point does not depend on insertion order.
 * - A ring is immutable once built: balancers rebuild it when their endpoint set changes.
 */
import { createHash } from "node:crypto";

/** Points each endpoint owns on the ring. */
export const POINTS_PER_HOST = 256;

/** 32-bit hash of a string (the first four bytes of its SHA-1: well mixed, and in OpenSSL, not JS). */
export function hash32(value: string): number {
  return createHash("sha1").update(value).digest().readUInt32BE(0);
}

/** An immutable hash ring over a set of addresses. */
export class HashRing {
  private readonly points: Uint32Array;
  private readonly owners: string[];
  private readonly hosts: number;

  /** Builds the ring for these addresses (duplicates ignored). */
  constructor(addresses: readonly string[]) {
    const unique = [...new Set(addresses)];
    const entries: { point: number; owner: string }[] = [];
    for (const owner of unique) {
      // One SHA-256 digest yields eight 32-bit points: an eighth of the hashing of one per point.
      for (let block = 0; block < POINTS_PER_HOST / 8; block++) {
        const digest = createHash("sha256").update(`${owner}#${block}`).digest();
        for (let i = 0; i < 8; i++) entries.push({ point: digest.readUInt32BE(i * 4), owner });
      }
    }
    entries.sort((a, b) => a.point - b.point || (a.owner < b.owner ? -1 : a.owner > b.owner ? 1 : 0));
    this.points = Uint32Array.from(entries, (e) => e.point);
    this.owners = entries.map((e) => e.owner);
    this.hosts = unique.length;
  }

  /** Number of points on the ring. */
  get size(): number {
    return this.points.length;
  }

  /**
   * Owners in ring order starting from the point that owns `hash`: the first one is the key's
   * endpoint, later distinct ones are where it moves when earlier ones are unusable.
   */
  *walk(hash: number): Generator<string> {
    const n = this.points.length;
    if (n === 0) return;
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.points[mid] as number) < hash) lo = mid + 1;
      else hi = mid;
    }
    const seen = new Set<string>();
    for (let k = 0; k < n && seen.size < this.hosts; k++) {
      const owner = this.owners[(lo + k) % n] as string;
      if (seen.has(owner)) continue;
      seen.add(owner);
      yield owner;
    }
  }

  /** The endpoint owning `hash`; undefined only for an empty ring. */
  owner(hash: number): string | undefined {
    for (const o of this.walk(hash)) return o;
    return undefined;
  }
}
