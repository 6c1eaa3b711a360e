/**
 * Who is calling: every agent call carries "authorization: Bearer <credential>" and the
 * controller maps the credential to a node. Local mode: a bootstrap token per node, minted by the
 * controller into <state dir>/tokens/<node>.token (0600) and read by that node's agent.
 * Kubernetes mode: the agent's projected service-account token, checked by TokenReview; the node
 * is the one the token's pod runs on (bound-token claims), as Istio's node authorizer does.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
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

/** Per-node bootstrap tokens in a directory. */
export class BootstrapTokens implements NodeAuthenticator {
  private byDigest = new Map<string, string>();
  private lastScan = 0;

  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.scan();
  }

  /** Path of a node's token file. */
  path(node: string): string {
    return join(this.dir, `${node}.token`);
  }

  /** Mints a token for a node unless it has one; returns the file path. */
  ensure(node: string): string {
    checkNodeName(node);
    const p = this.path(node);
    if (!existsSync(p)) {
      writeFileSecure(p, `${randomBytes(32).toString("base64url")}\n`, 0o600);
      this.scan();
    }
    return p;
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
    const stored = digest(readFileSync(this.path(node), "utf8").trim());
    if (!timingSafeEqual(stored, d)) throw new AuthError(status.UNAUTHENTICATED, "bootstrap token was replaced; read the new token file");
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
}

/** Authenticates service-account tokens with the API server's TokenReview. */
export class TokenReviewAuthenticator implements NodeAuthenticator {
  private readonly cache = new Map<string, { at: number; result: NodeIdentity | AuthError }>();

  constructor(private readonly opts: TokenReviewOptions) {}

  /** The node the token's pod runs on. */
  async authenticate(credential: string): Promise<NodeIdentity> {
    const key = digest(credential).toString("hex");
    const hit = this.cache.get(key);
    if (hit && Date.now() - hit.at < (this.opts.cacheMs ?? 60_000)) {
      if (hit.result instanceof AuthError) throw hit.result;
      return hit.result;
    }
    const result = await this.review(credential).catch((e: unknown) => {
      if (e instanceof AuthError) return e;
      throw e;
    });
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(key, { at: Date.now(), result });
    if (result instanceof AuthError) throw result;
    return result;
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
