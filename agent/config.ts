/** The agent's settings, from `weft agent` flags and environment, checked with errors naming the flag. */
import { existsSync } from "node:fs";
import { hostname } from "node:os";
import { isAbsolute } from "node:path";
import { durationFlag } from "../common/duration.js";
import { ConfigError, errorMessage } from "../common/errors.js";
import { parseListen } from "../common/listen.js";
import { LOG_LEVELS } from "../common/log.js";
import { PORT_ADMIN } from "../controller/api/constants.js";
import { DEFAULT_TRUST_DOMAIN } from "../controller/api/model.js";
import { type TranslateOptions, validateTranslateOptions } from "../controller/embedded.js";
import { type DataPlaneConfig, type DataPlaneFlags, dataPlaneConfig } from "./config-dataplane.js";

/** Where the agent's mesh state comes from. */
export type AgentSource =
  | { kind: "controller"; target: string; serverName?: string; tokenFile: string; caFile: string }
  | { kind: "local"; path: string; caDir: string };

/** Everything the agent needs. */
export interface AgentConfig {
  node: string;
  source: AgentSource;
  /** Used in local mode, and until the controller's MeshConfig arrives. */
  translate: TranslateOptions;
  /** Admin API on TCP (null: off). */
  adminAddress: { host: string; port: number } | null;
  /** Admin API on a unix socket (null: off). */
  adminSocket: string | null;
  /** Certificate lifetime to request (0: the CA's default). */
  certTtlSeconds: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  /** After a root rotation, certificates are re-issued at random within this window (not a flag). */
  rotationSpreadMs: number;
  logLevel: string;
  /** Capture and proxy; null runs control-plane parts only. */
  dataPlane: DataPlaneConfig | null;
  /** Where the accepted config and certificates are persisted (null: not persisted). */
  stateDir?: string | null;
}

/** Raw flag values. */
export interface AgentFlags {
  node?: string;
  controller?: string;
  serverName?: string;
  tokenFile?: string;
  caFile?: string;
  localConfig?: string;
  localCaDir?: string;
  trustDomain?: string;
  rootNamespace?: string;
  clusterDomain?: string;
  adminAddress?: string;
  adminSocket?: string;
  certTtl?: string;
  reconnectMax?: string;
  logLevel?: string;
  stateDir?: string;
}

/** All `weft agent` flags. */
export type AllAgentFlags = AgentFlags & DataPlaneFlags;

/** Default admin socket of a node's agent (reachable from the host while the agent is in a netns). */
export function defaultAdminSocket(node: string): string {
  return `/run/weft/agent-${node}.sock`;
}

/** Builds and checks the configuration; throws one error listing every problem. */
export function agentConfig(f: AllAgentFlags, env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const errors: string[] = [];
  const attempt = <T>(fn: () => T, fallback: T): T => {
    try {
      return fn();
    } catch (e) {
      errors.push(errorMessage(e));
      return fallback;
    }
  };
  const node = f.node ?? env.NODE_NAME ?? hostname();
  if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(node)) errors.push(`--node '${node}': not a valid Kubernetes node name`);
  let source: AgentSource = { kind: "local", path: "", caDir: "" };
  if (f.controller && f.localConfig)
    errors.push("--controller and --local-config are exclusive: follow a controller or a local YAML file, not both");
  else if (f.controller) {
    attempt(() => parseListen(f.controller as string, "--controller"), null);
    if (!f.tokenFile)
      errors.push(
        "--token-file is required with --controller (the node's credential; the controller writes <state dir>/tokens/<node>.token)",
      );
    if (!f.caFile) errors.push("--ca-file is required with --controller (the root that signed the controller's certificate)");
    else if (!existsSync(f.caFile)) errors.push(`--ca-file ${f.caFile} does not exist`);
    source = {
      kind: "controller",
      target: f.controller,
      tokenFile: f.tokenFile ?? "",
      caFile: f.caFile ?? "",
      ...(f.serverName ? { serverName: f.serverName } : {}),
    };
  } else if (f.localConfig) {
    if (!existsSync(f.localConfig)) errors.push(`--local-config ${f.localConfig} does not exist`);
    source = { kind: "local", path: f.localConfig, caDir: f.localCaDir ?? "/var/lib/weft/agent" };
  } else {
    errors.push("no source: pass --controller <host:port> (with --token-file and --ca-file) or --local-config <yaml>");
  }
  if (f.localCaDir && !f.localConfig) errors.push("--local-ca-dir only applies with --local-config");
  const translate: TranslateOptions = {
    trustDomain: f.trustDomain ?? DEFAULT_TRUST_DOMAIN,
    rootNamespace: f.rootNamespace ?? "weft-system",
    clusterDomain: f.clusterDomain ?? "cluster.local",
  };
  errors.push(...validateTranslateOptions(translate).map((e) => `--${e}`));
  const adminAddress =
    f.adminAddress === "off"
      ? null
      : attempt(() => parseListen(f.adminAddress ?? `127.0.0.1:${PORT_ADMIN}`, "--admin-address", `127.0.0.1:${PORT_ADMIN}`), null);
  if (adminAddress && adminAddress.host !== "127.0.0.1" && adminAddress.host !== "::1" && adminAddress.host !== "localhost") {
    errors.push(`--admin-address '${f.adminAddress}': the admin API binds to loopback only (127.0.0.1 or ::1)`);
  }
  const logLevel = f.logLevel ?? env.WEFT_LOG_LEVEL ?? "info";
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel))
    errors.push(`--log-level '${logLevel}': use trace, debug, info, warn or error`);
  const config: AgentConfig = {
    node,
    source,
    translate,
    adminAddress,
    adminSocket: f.adminSocket === "off" ? null : (f.adminSocket ?? defaultAdminSocket(node)),
    certTtlSeconds: Math.round(attempt(() => durationFlag("--cert-ttl", f.certTtl, 0, 1000), 0) / 1000),
    backoffInitialMs: 250,
    backoffMaxMs: attempt(() => durationFlag("--reconnect-max", f.reconnectMax, 10_000, 100), 10_000),
    rotationSpreadMs: 30_000,
    logLevel,
    dataPlane: dataPlaneConfig(f, errors),
    stateDir: !f.stateDir || f.stateDir === "off" ? null : f.stateDir,
  };
  if (config.stateDir && !isAbsolute(config.stateDir)) errors.push(`--state-dir '${config.stateDir}': expected an absolute path or off`);
  if (errors.length) throw new ConfigError(`invalid agent settings:\n  ${errors.join("\n  ")}`);
  return config;
}
