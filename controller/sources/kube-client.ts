/**
 * A small JSON client for the Kubernetes API on top of @kubernetes/client-node's KubeConfig
 * (which knows in-cluster service accounts, kubeconfig files, exec plugins and client certs).
 * Objects stay raw JSON, exactly as watches deliver them, so list and watch agree.
 */
import { existsSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import { homedir } from "node:os";
import { join } from "node:path";
import type { KubeConfig } from "@kubernetes/client-node";
import { Backoff } from "../../common/backoff.js";
import { ConfigError, errorMessage, WeftError } from "../../common/errors.js";
import type { Logger } from "../../common/log.js";

/** How to reach the API server. */
export interface KubeConnection {
  /** A kubeconfig file; absent: in-cluster when KUBERNETES_SERVICE_HOST is set, else the default kubeconfig. */
  kubeconfig?: string;
  /** Force the in-cluster service account (files under pathPrefix, for tests). */
  inCluster?: boolean;
  pathPrefix?: string;
  /** kubeconfig context to use. */
  context?: string;
}

/** A non-2xx answer from the API server. */
export class KubeApiError extends WeftError {
  override readonly name = "KubeApiError";
  constructor(
    readonly statusCode: number,
    readonly reason: string,
    message: string,
  ) {
    super(
      statusCode === 404
        ? "WEFT_NOT_FOUND"
        : statusCode === 401
          ? "WEFT_UNAUTHENTICATED"
          : statusCode === 403
            ? "WEFT_PERMISSION"
            : statusCode === 409
              ? "WEFT_CONFLICT"
              : "WEFT_UNAVAILABLE",
      message,
    );
  }
}

/** Loads the client library (lazily: it costs half a second, and only Kubernetes mode needs it). */
export async function loadKubeConfig(conn: KubeConnection): Promise<KubeConfig> {
  const { KubeConfig } = await import("@kubernetes/client-node");
  const kc = new KubeConfig();
  if (!conn.kubeconfig && !conn.inCluster) {
    // client-node would fall back to http://localhost:8080; say what is missing instead.
    const env = process.env.KUBECONFIG?.split(":").filter(Boolean) ?? [];
    const found = env.length > 0 ? env.some((f) => existsSync(f)) : existsSync(join(homedir(), ".kube", "config"));
    if (!found && !process.env.KUBERNETES_SERVICE_HOST)
      throw new ConfigError(
        `--kubernetes: no kubeconfig (${env.length ? `$KUBECONFIG=${process.env.KUBECONFIG}` : "~/.kube/config"} does not exist) and not running in a cluster (KUBERNETES_SERVICE_HOST is unset); pass --kubeconfig FILE`,
      );
  }
  if (conn.kubeconfig) kc.loadFromFile(conn.kubeconfig);
  else if (conn.inCluster) kc.loadFromCluster(conn.pathPrefix);
  else kc.loadFromDefault();
  if (conn.context) kc.setCurrentContext(conn.context);
  if (!kc.getCurrentCluster()) throw new Error("no Kubernetes cluster configured (no kubeconfig context and not running in a cluster)");
  return kc;
}

/** JSON requests to the API server. */
export class KubeClient {
  constructor(readonly config: KubeConfig) {}

  /** The API server's base URL. */
  get server(): string {
    return this.config.getCurrentCluster()?.server ?? "";
  }

  /** Sends a request; resolves with the parsed body of a 2xx answer, else rejects with KubeApiError. */
  async request<T>(method: string, path: string, body?: unknown, timeoutMs = 30_000, contentType = "application/json"): Promise<T> {
    const url = new URL(this.server.replace(/\/$/, "") + path);
    const opts: https.RequestOptions = { method, headers: { accept: "application/json" }, timeout: timeoutMs };
    await this.config.applyToHTTPSOptions(opts);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    if (payload) (opts.headers as Record<string, string>)["content-type"] = contentType;
    const mod = url.protocol === "http:" ? http : https;
    if (url.protocol === "http:") delete opts.agent;
    return new Promise<T>((resolve, reject) => {
      const req = mod.request(url, opts, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let parsed: unknown;
          try {
            parsed = text ? JSON.parse(text) : {};
          } catch {
            parsed = undefined;
          }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300 && parsed !== undefined) {
            resolve(parsed as T);
            return;
          }
          const st = parsed as { reason?: string; message?: string } | undefined;
          reject(new KubeApiError(status, st?.reason ?? "", `${method} ${path}: ${status} ${st?.message ?? text.slice(0, 200)}`));
        });
      });
      req.on("timeout", () => req.destroy(new Error(`${method} ${path}: no answer within ${timeoutMs} ms`)));
      req.on("error", (e) => reject(new Error(`${method} ${path}: ${e.message} (API server ${this.server})`)));
      req.end(payload);
    });
  }
}

/**
 * Waits until the API server answers at all (any HTTP status: a refusal is for the caller's real
 * request to report), retrying a connection failure with backoff instead of giving up: a
 * controller started before its API server is reachable waits for it. Stops waiting on abort.
 */
export async function waitForApiServer(
  client: Pick<KubeClient, "request">,
  log: Logger,
  signal?: AbortSignal,
  backoff = new Backoff(500, 30_000),
): Promise<void> {
  for (;;) {
    try {
      await client.request("GET", "/version", undefined, 10_000);
      return;
    } catch (e) {
      if (e instanceof KubeApiError) return;
      if (signal?.aborted) throw new Error("stopped while waiting for the API server");
      const delay = backoff.next();
      log.warn({ err: errorMessage(e), retryInMs: delay }, "the API server is unreachable; retrying");
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, delay);
        signal?.addEventListener("abort", () => {
          clearTimeout(t);
          resolve();
        });
      });
      if (signal?.aborted) throw new Error("stopped while waiting for the API server");
    }
  }
}
