/**
 * Who is calling: every agent call carries "authorization: Bearer <credential>" and the
 * controller maps the credential to a node. Local mode: a bootstrap token per node, minted by the
 * controller into <state dir>/tokens/<node>.token (0640) and read by that node's agent.
 * Kubernetes mode: the agent's projected service-account token, checked by TokenReview; the node
 * is the one the token's pod runs on (bound-token claims), as Istio's node authorizer does.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { type Metadata, status } from "@grpc/grpc-js";
import { errorMessage, WeftError } from "../../common/errors.js";
import type { KubeClient } from "../sources/kube-client.js";
import { writeFileSecure } from "./root-store.js";

/** An authenticated agent. */
export interface NodeIdentity {
  node: string;
  /** How it proved it ("bootstrap token", "service account weft-system/weft-agent"). */
  via: string;
}

/** A refused call, with the gRPC status to answer. */
export class AuthError extends WeftError {
  override readonly name = "AuthError";
  constructor(
    /** The gRPC status the call ends with. */
    readonly grpcStatus: status.UNAUTHENTICATED | status.PERMISSION_DENIED,
    message: string,
  ) {
    super(grpcStatus === status.UNAUTHENTICATED ? "WEFT_UNAUTHENTICATED" : "WEFT_PERMISSION", message);
  }
}

/** Maps a credential to a node. */
export interface NodeAuthenticator {
  authenticate(credential: string): Promise<NodeIdentity>;
}

/** The bearer credential of a call, or an UNAUTHENTICATED AuthError. */
export function bearer(md: Metadata): string {
  const v = md.get("authorization")[0];
  if (typeof v !== "string" || !v)
    throw new AuthError(status.UNAUTHENTICATED, "no credential: the call carries no 'authorization: Bearer <token>' metadata");
  const m = /^Bearer\s+(\S+)$/i.exec(v);
  if (!m) throw new AuthError(status.UNAUTHENTICATED, "malformed authorization metadata: expected 'Bearer <token>'");
  return m[1] as string;
}

function digest(token: string): Buffer {
  return createHash("sha256").update(token).digest();
}

/** Node names that are safe as file names (Kubernetes node names are DNS subdomains). */
export function checkNodeName(node: string): void {
  if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(node)) throw new Error(`'${node}' is not a valid node name`);
}

/** Default lifetime of a bootstrap token; it is replaced (rotated) at half of it. */
const BOOTSTRAP_TOKEN_MAX_AGE_MS = 30 * 24 * 3600_000;

/**
 * Per-node bootstrap tokens in a directory. A token expires maxAgeMs after it was minted (the
 * file's mtime) and is rotated at half that by ensure(); the agent reads its token file for every
 * call, so a rotation needs nothing from it. A node's token is revoked when the node goes.
 */
export class BootstrapTokens implements NodeAuthenticator {
  private byDigest = new Map<string, string>();
  private lastScan = 0;

  constructor(
    readonly dir: string,
    readonly maxAgeMs = BOOTSTRAP_TOKEN_MAX_AGE_MS,
  ) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.scan();
  }

  /** Path of a node's token file. */
  path(node: string): string {
    return join(this.dir, `${node}.token`);
  }

  /** Mints a token for a node unless it has one young enough (past half its life it is replaced); returns the file path. */
  ensure(node: string): string {
    checkNodeName(node);
    const p = this.path(node);
    if (!existsSync(p) || this.ageMs(p) > this.maxAgeMs / 2) {
      // 0640: an agent that shares the controller's group may read it (the local cluster's
      // agents do); the directory, 0700 unless an operator shares it, keeps it private otherwise.
      writeFileSecure(p, `${randomBytes(32).toString("base64url")}\n`, 0o640);
      this.scan();
    }
    return p;
  }

  /** Revokes a node's token (the node left the cluster). */
  revoke(node: string): void {
    checkNodeName(node);
    rmSync(this.path(node), { force: true });
    this.scan();
  }

  private ageMs(path: string): number {
    try {
      return Date.now() - statSync(path).mtimeMs;
    } catch {
      return Number.POSITIVE_INFINITY;
    }
  }

  private scan(): void {
    const m = new Map<string, string>();
    for (const f of readdirSync(this.dir)) {
      if (!f.endsWith(".token") || f.startsWith(".")) continue;
      const token = readFileSync(join(this.dir, f), "utf8").trim();
      if (token) m.set(digest(token).toString("hex"), f.slice(0, -".token".length));
    }
    this.byDigest = m;
    this.lastScan = Date.now();
  }

  /** The node a token belongs to. */
  async authenticate(credential: string): Promise<NodeIdentity> {
    const d = digest(credential);
    let node = this.byDigest.get(d.toString("hex"));
    // Tokens minted by `weft controller token` in another process appear on disk: look again,
    // at most once a second so a flood of bad tokens cannot turn into a flood of directory reads.
    if (!node && Date.now() - this.lastScan > 1000) {
      this.scan();
      node = this.byDigest.get(d.toString("hex"));
    }
    if (!node)
      throw new AuthError(status.UNAUTHENTICATED, "unknown bootstrap token: it is not one the controller minted (check --token-file)");
    // The map lookup is by digest; compare once more in constant time for good measure.
    let text: string;
    try {
      text = readFileSync(this.path(node), "utf8");
    } catch {
      throw new AuthError(status.UNAUTHENTICATED, `bootstrap token of node ${node} was revoked`);
    }
    const stored = digest(text.trim());
    if (!timingSafeEqual(stored, d)) throw new AuthError(status.UNAUTHENTICATED, "bootstrap token was replaced; read the new token file");
    if (this.ageMs(this.path(node)) > this.maxAgeMs)
      throw new AuthError(
        status.UNAUTHENTICATED,
        `bootstrap token of node ${node} expired; the controller mints a new one while the node exists`,
      );
    return { node, via: "bootstrap token" };
  }
}

interface TokenReviewStatus {
  status?: {
    authenticated?: boolean;
    error?: string;
    user?: { username?: string; extra?: Record<string, string[]> };
    audiences?: string[];
  };
}

/** Options of TokenReview authentication. */
export interface TokenReviewOptions {
  client: KubeClient;
  /** Audiences the agent's projected token must carry (empty: the API server's default). */
  audiences: string[];
  /** Service accounts agents run as, "namespace/name". */
  agentServiceAccounts: string[];
  /** The node a pod runs on, from the controller's informer cache. */
  podNode: (namespace: string, name: string, uid: string | undefined) => string | undefined;
  /** How long a review result is reused (default 60 s). */
  cacheMs?: number;
  /** Accepted tokens remembered (default 4096: a few per node). */
  maxAccepted?: number;
  /** Refused tokens remembered (default 1024), apart from accepted ones. */
  maxRefused?: number;
  /** TokenReviews in flight at once (default 32); callers beyond wait for a slot. */
  maxConcurrentReviews?: number;
}

/**
 * A bounded map that forgets its oldest entry first. Accepted and refused tokens live in separate
 * ones, so a flood of random tokens evicts only other refused tokens, never the agents' own.
 */
class BoundedCache<V> {
  private readonly map = new Map<string, { at: number; value: V }>();
  constructor(private readonly max: number) {}

  get(key: string, maxAgeMs: number): V | undefined {
    const hit = this.map.get(key);
    if (!hit) return undefined;
    if (Date.now() - hit.at >= maxAgeMs) {
      this.map.delete(key);
      return undefined;
    }
    return hit.value;
  }

  set(key: string, value: V): void {
    this.map.delete(key);
    this.map.set(key, { at: Date.now(), value });
    while (this.map.size > this.max) {
      const oldest = this.map.keys().next().value as string;
      this.map.delete(oldest);
    }
  }
}

/** What `weft controller token` mints: 32 random bytes in base64url. */
const BOOTSTRAP_TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/;

/** Authenticates service-account tokens with the API server's TokenReview. */

export class TokenReviewAuthenticator implements NodeAuthenticator {
  private readonly accepted: BoundedCache<NodeIdentity>;
  private readonly refused: BoundedCache<AuthError>;
  /** Reviews in flight per token digest: a burst with one token costs one review. */
  private readonly inflight = new Map<string, Promise<NodeIdentity | AuthError>>();
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly opts: TokenReviewOptions) {
    this.accepted = new BoundedCache(opts.maxAccepted ?? 4096);
    this.refused = new BoundedCache(opts.maxRefused ?? 1024);
  }

  /** The node the token's pod runs on. */
  async authenticate(credential: string): Promise<NodeIdentity> {
    // A file-store bootstrap token (32 random bytes, base64url: never a JWT, which has dots) is
    // refused here with a message that says what to use instead of a bare TokenReview refusal.
    if (BOOTSTRAP_TOKEN_SHAPE.test(credential.trim())) {
      throw new AuthError(
        status.UNAUTHENTICATED,
        "not a Kubernetes service-account token (bootstrap tokens are for a controller reading a file store): in Kubernetes mode the agent presents its projected token with audience 'weft' (--token-file)",
      );
    }
    const key = digest(credential).toString("hex");
    const ttl = this.opts.cacheMs ?? 60_000;
    const ok = this.accepted.get(key, ttl);
    if (ok) return ok;
    const bad = this.refused.get(key, ttl);
    if (bad) throw bad;
    let p = this.inflight.get(key);
    if (!p) {
      p = this.limited(() => this.review(credential))
        .catch((e: unknown) => {
          if (e instanceof AuthError) return e;
          throw e;
        })
        .finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    const result = await p;
    if (result instanceof AuthError) {
      this.refused.set(key, result);
      throw result;
    }
    this.accepted.set(key, result);
    return result;
  }

  /** Runs fn when fewer than maxConcurrentReviews are running (the API server is not ours to flood). */
  private async limited<T>(fn: () => Promise<T>): Promise<T> {
    const max = this.opts.maxConcurrentReviews ?? 32;
    while (this.running >= max) await new Promise<void>((r) => this.waiting.push(r));
    this.running++;
    try {
      return await fn();
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }

  private async review(token: string): Promise<NodeIdentity> {
    let r: TokenReviewStatus;
    try {
      r = await this.opts.client.request<TokenReviewStatus>("POST", "/apis/authentication.k8s.io/v1/tokenreviews", {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenReview",
        spec: { token, ...(this.opts.audiences.length ? { audiences: this.opts.audiences } : {}) },
      });
    } catch (e) {
      throw new Error(`TokenReview failed: ${errorMessage(e)}`);
    }
    const st = r.status ?? {};
    if (!st.authenticated)
      throw new AuthError(status.UNAUTHENTICATED, `service-account token rejected by the API server${st.error ? `: ${st.error}` : ""}`);
    // The API server says which of the requested audiences the token carries; a token for another
    // audience (a token minted for some other service) must not authenticate an agent.
    if (this.opts.audiences.length) {
      const got = st.audiences ?? [];
      if (!got.some((a) => this.opts.audiences.includes(a)))
        throw new AuthError(
          status.UNAUTHENTICATED,
          `service-account token is not for this controller: audiences [${got.join(", ")}], expected one of [${this.opts.audiences.join(", ")}]`,
        );
    }
    const user = st.user?.username ?? "";
    const m = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(user);
    if (!m || !this.opts.agentServiceAccounts.includes(`${m[1]}/${m[2]}`)) {
      throw new AuthError(
        status.PERMISSION_DENIED,
        `'${user}' is not an agent service account (${this.opts.agentServiceAccounts.join(", ")})`,
      );
    }
    const extra = st.user?.extra ?? {};
    const node = extra["authentication.kubernetes.io/node-name"]?.[0];
    if (node) return { node, via: `service account ${m[1]}/${m[2]}` };
    const pod = extra["authentication.kubernetes.io/pod-name"]?.[0];
    const uid = extra["authentication.kubernetes.io/pod-uid"]?.[0];
    if (!pod)
      throw new AuthError(
        status.PERMISSION_DENIED,
        "the token is not bound to a pod (use a projected service-account token), so its node is unknown",
      );
    const podNode = this.opts.podNode(m[1] as string, pod, uid);
    if (!podNode) throw new AuthError(status.PERMISSION_DENIED, `pod ${m[1]}/${pod} of the token is not known (or not scheduled)`);
    return { node: podNode, via: `service account ${m[1]}/${m[2]} (pod ${pod})` };
  }
}
