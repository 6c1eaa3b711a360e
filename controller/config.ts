/** The controller's settings, from `weft controller` flags, checked with errors that name the flag. */

import { join } from "node:path";
import { durationFlag } from "../common/duration.js";
import { ConfigError, errorMessage } from "../common/errors.js";
import { parseListen as parseListenFlag } from "../common/listen.js";
import { LOG_LEVELS } from "../common/log.js";
import { PORT_CONTROLLER } from "./api/constants.js";
import { parseLimits } from "./api/limit-settings.js";
import type { LeaseTiming } from "./ha/lease.js";
import type { KubeConnection } from "./sources/kube-client.js";
import { validateTranslateOptions } from "./translate/index.js";
import type { TranslateOptions } from "./translate/types.js";
import { DEFAULT_XDS_LIMITS, type XdsLimits } from "./xds/limits.js";

/** Where the controller reads the cluster. */
export type SourceConfig = { kind: "file"; path: string } | { kind: "kubernetes"; connection: KubeConnection; namespaceSelector?: string };

/** Where the CA's signing key comes from. */
export type CaSource = { kind: "state-dir" } | { kind: "files"; dir: string } | { kind: "secret"; namespace: string; name: string };

/** Everything the controller needs. */
export interface ControllerConfig {
  source: SourceConfig;
  /** host and port the gRPC server binds. */
  listenHost: string;
  listenPort: number;
  stateDir: string;
  translate: TranslateOptions;
  debounceMs: number;
  maxDebounceMs: number;
  ca: CaSource;
  certTtlMs: number;
  maxCertTtlMs: number;
  /** Extra DNS names / IPs in the serving certificate. */
  serverNames: string[];
  /** Kubernetes mode: service accounts agents run as, and the audience of their tokens. */
  agentServiceAccounts: string[];
  tokenAudiences: string[];
  /** Namespace the controller runs in (its service's DNS names). */
  namespace: string;
  adminSocket: string;
  logLevel: string;
  /** xDS/CA server limits (`--limit name=value`). */
  limits: XdsLimits;
  /** Kubernetes mode: the leader Lease's timing (tests shorten it). */
  leaderLease?: LeaseTiming;
}

/** Raw flag values (as commander gives them). */
export interface ControllerFlags {
  store?: string;
  kubernetes?: boolean;
  kubeconfig?: string;
  context?: string;
  namespaceSelector?: string;
  listen?: string;
  stateDir?: string;
  trustDomain?: string;
  rootNamespace?: string;
  clusterDomain?: string;
  debounce?: string;
  maxDebounce?: string;
  caDir?: string;
  caSecret?: string;
  certTtl?: string;
  maxCertTtl?: string;
  serverName?: string[];
  agentServiceAccount?: string[];
  tokenAudience?: string[];
  adminSocket?: string;
  logLevel?: string;
  limit?: string[];
}

/** Default state dir outside the local cluster. */
export const DEFAULT_STATE_DIR = "/var/lib/weft/controller";

/** Parses "host:port" / "[v6]:port" / ":port". */
export function parseListen(text: string): { host: string; port: number } {
  return parseListenFlag(text, "--listen", `10.250.0.1:${PORT_CONTROLLER}`);
}

/** Builds and checks the configuration; throws one error listing every problem. */
export function controllerConfig(f: ControllerFlags): ControllerConfig {
  const errors: string[] = [];
  const attempt = <T>(fn: () => T, fallback: T): T => {
    try {
      return fn();
    } catch (e) {
      errors.push(errorMessage(e));
      return fallback;
    }
  };
  const useKube = Boolean(f.kubernetes || f.kubeconfig);
  if (useKube && f.store)
    errors.push("--store and --kubernetes/--kubeconfig are exclusive: read the file store or the API server, not both");
  if (!useKube && !f.store)
    errors.push("no source: pass --store <dir> (the local cluster's file store) or --kubernetes / --kubeconfig <file>");
  if (f.namespaceSelector && !useKube) errors.push("--namespace-selector needs --kubernetes (the file store has no selectors)");
  const source: SourceConfig = useKube
    ? {
        kind: "kubernetes",
        connection: { ...(f.kubeconfig ? { kubeconfig: f.kubeconfig } : {}), ...(f.context ? { context: f.context } : {}) },
        ...(f.namespaceSelector ? { namespaceSelector: f.namespaceSelector } : {}),
      }
    : { kind: "file", path: f.store ?? "" };
  const listen = attempt(() => parseListen(f.listen ?? `0.0.0.0:${PORT_CONTROLLER}`), { host: "0.0.0.0", port: PORT_CONTROLLER });
  const translate: TranslateOptions = {
    trustDomain: f.trustDomain ?? "cluster.local",
    rootNamespace: f.rootNamespace ?? "weft-system",
    clusterDomain: f.clusterDomain ?? "cluster.local",
  };
  errors.push(...validateTranslateOptions(translate).map((e) => `--${e}`));
  let ca: CaSource = { kind: "state-dir" };
  if (f.caDir && f.caSecret) errors.push("--ca-dir and --ca-secret are exclusive");
  if (f.caDir) ca = { kind: "files", dir: f.caDir };
  if (f.caSecret) {
    const [ns, name, extra] = f.caSecret.split("/");
    if (!ns || !name || extra !== undefined) errors.push(`--ca-secret '${f.caSecret}': expected <namespace>/<name>`);
    else if (!useKube) errors.push("--ca-secret needs --kubernetes");
    else ca = { kind: "secret", namespace: ns, name };
  }
  const certTtlMs = attempt(() => durationFlag("--cert-ttl", f.certTtl, 24 * 3600_000, 1000), 0);
  const maxCertTtlMs = attempt(() => durationFlag("--max-cert-ttl", f.maxCertTtl, Math.max(30 * 24 * 3600_000, certTtlMs), 1000), 0);
  if (certTtlMs > maxCertTtlMs) errors.push(`--cert-ttl (${f.certTtl}) is longer than --max-cert-ttl (${f.maxCertTtl})`);
  const sas = f.agentServiceAccount?.length ? f.agentServiceAccount : ["weft-system/weft-agent"];
  for (const sa of sas)
    if (!/^[a-z0-9-]+\/[a-z0-9.-]+$/.test(sa)) errors.push(`--agent-service-account '${sa}': expected <namespace>/<name>`);
  const logLevel = f.logLevel ?? "info";
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel))
    errors.push(`--log-level '${logLevel}': use trace, debug, info, warn or error`);
  const stateDir = f.stateDir ?? DEFAULT_STATE_DIR;
  const config: ControllerConfig = {
    source,
    listenHost: listen.host,
    listenPort: listen.port,
    stateDir,
    translate,
    debounceMs: attempt(() => durationFlag("--debounce", f.debounce, 100), 100),
    maxDebounceMs: attempt(() => durationFlag("--max-debounce", f.maxDebounce, 1000), 1000),
    ca,
    certTtlMs,
    maxCertTtlMs,
    serverNames: f.serverName ?? [],
    agentServiceAccounts: sas,
    tokenAudiences: f.tokenAudience?.length ? f.tokenAudience : ["weft"],
    namespace: process.env.POD_NAMESPACE ?? "weft-system",
    adminSocket: f.adminSocket ?? join(stateDir, "controller.sock"),
    logLevel,
    limits: parseLimits(DEFAULT_XDS_LIMITS, f.limit ?? [], "--limit", errors),
  };
  if (errors.length) throw new ConfigError(`invalid controller settings:\n  ${errors.join("\n  ")}`);
  return config;
}
