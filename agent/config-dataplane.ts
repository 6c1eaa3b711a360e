/**
 * The data plane's settings (capture, proxy, metrics, readiness) from `weft agent` flags. The
 * data plane is on when --proxy-address is given; capture additionally needs --pod-cgroup.
 * Without them the agent runs control-plane parts only (state, certificates, admin), which is
 * also how it is debugged on a machine with no BPF.
 */

import { existsSync, readFileSync } from "node:fs";
import { isIPv4 } from "node:net";
import { isAbsolute, join } from "node:path";
import { durationFlag } from "../common/duration.js";
import { errorMessage, KernelError } from "../common/errors.js";
import { PORT_METRICS, PORT_READINESS } from "../controller/api/constants.js";
import { parseLimits } from "../controller/api/limit-settings.js";
import { cgroup2Root } from "../native/cgroup.js";
import type { CgroupLayout } from "./capture/pod-cgroups.js";
import { DEFAULT_PROXY_LIMITS, type ProxyLimits } from "./proxy/limits.js";
import { DEFAULT_PIN_DIR } from "./redirect/defaults.js";
import type { TracingConfig } from "./telemetry/tracing.js";

/** Data-plane flags as commander gives them. */
export interface DataPlaneFlags {
  proxyAddress?: string;
  hboneAddress?: string;
  podCgroup?: string;
  cgroupLayout?: string;
  proxyCgroup?: string;
  pinDir?: string;
  exclude?: string[];
  proxyWorkers?: string;
  metricsAddress?: string;
  readinessAddress?: string;
  drain?: string;
  /** `--tracing-endpoint`: OTLP http/protobuf collector base URL. */
  tracingEndpoint?: string;
  /** `--tracing-sampling`: percentage of new traces sampled. */
  tracingSampling?: string;
  /** `--limit name=value` (repeatable): proxy listener limits. */
  limit?: string[];
  /** `--same-node-splice kernel|proxy`. */
  sameNodeSplice?: string;
}

/** Capture settings (BPF). */
export interface CaptureSettings {
  podCgroupParent: string;
  layout: CgroupLayout;
  proxyCgroup: string;
  pinDir: string;
  excluded: string[];
}

/** The data plane. */
export interface DataPlaneConfig {
  /** The pods' gateway: where captured connections arrive (15001). */
  proxyAddress: string;
  /** Where HBONE (15008) listens. */
  hboneAddress: string;
  capture: CaptureSettings | null;
  workers: number;
  drainMs: number;
  metrics: { host: string; port: number } | null;
  readiness: { host: string; port: number } | null;
  /** Proxy listener limits (docs/LIMITS.md). */
  limits: ProxyLimits;
  /** Request tracing (absent: off). */
  tracing?: TracingConfig;
  /** Who carries the bytes of same-node connections that only L4 policy applies to: the kernel (sockhash splice) or the proxy. */
  sameNodeSplice: "kernel" | "proxy";
}

/** --tracing-endpoint/--tracing-sampling → the tracing settings (undefined: tracing off). */
function tracingConfig(f: DataPlaneFlags, errors: string[]): TracingConfig | undefined {
  const pct = Number(f.tracingSampling ?? "1");
  if (!(pct >= 0 && pct <= 100)) errors.push(`--tracing-sampling '${f.tracingSampling}': expected a percentage from 0 to 100`);
  if (!f.tracingEndpoint) {
    if (f.tracingSampling !== undefined) errors.push("--tracing-sampling needs --tracing-endpoint (where spans are sent)");
    return undefined;
  }
  if (!/^http:\/\/[^/\s]+(:\d{1,5})?\/?$/.test(f.tracingEndpoint))
    errors.push(`--tracing-endpoint '${f.tracingEndpoint}': expected http://<host>:<port> (OTLP http/protobuf; spans go to /v1/traces)`);
  return { endpoint: f.tracingEndpoint, samplingPercentage: pct };
}

/** This process's cgroup v2 path (from /proc/self/cgroup "0::/path"). */
export function ownCgroup(procText = readFileSync("/proc/self/cgroup", "utf8")): string {
  const line = procText.split("\n").find((l) => l.startsWith("0::"));
  if (!line) throw new KernelError("cannot find this process's cgroup v2 in /proc/self/cgroup");
  return join(cgroup2Root(), line.slice(3));
}

function hostPort(flag: string, text: string, errors: string[]): { host: string; port: number } | null {
  if (text === "off") return null;
  const m = /^([\d.]+):(\d{1,5})$/.exec(text);
  if (!m || !isIPv4(m[1] as string) || Number(m[2]) > 65535) {
    errors.push(`${flag} '${text}': expected <ipv4>:<port> or off`);
    return null;
  }
  return { host: m[1] as string, port: Number(m[2]) };
}

/** Parses and checks the data-plane flags, pushing problems (naming the flag) onto errors. */
export function dataPlaneConfig(f: DataPlaneFlags, errors: string[]): DataPlaneConfig | null {
  if (!f.proxyAddress) {
    if (f.podCgroup) errors.push("--pod-cgroup needs --proxy-address (captured connections must have somewhere to go)");
    return null;
  }
  if (!isIPv4(f.proxyAddress))
    errors.push(`--proxy-address '${f.proxyAddress}': expected an IPv4 address (the pods' gateway on this node)`);
  const hboneAddress = f.hboneAddress ?? "0.0.0.0";
  if (!isIPv4(hboneAddress)) errors.push(`--hbone-address '${hboneAddress}': expected an IPv4 address`);
  let capture: CaptureSettings | null = null;
  if (f.podCgroup) {
    const layout = (f.cgroupLayout ?? "kubelet") as CgroupLayout;
    if (layout !== "kubelet" && layout !== "local") errors.push(`--cgroup-layout '${f.cgroupLayout}': expected kubelet or local`);
    try {
      const root = cgroup2Root();
      const parent = isAbsolute(f.podCgroup) ? f.podCgroup : join(root, f.podCgroup);
      if (!existsSync(parent)) errors.push(`--pod-cgroup ${parent} does not exist`);
      const proxyCgroup = f.proxyCgroup ? (isAbsolute(f.proxyCgroup) ? f.proxyCgroup : join(root, f.proxyCgroup)) : ownCgroup();
      if (proxyCgroup === parent || proxyCgroup.startsWith(`${parent}/`)) {
        errors.push(
          `the agent's cgroup ${proxyCgroup} is inside --pod-cgroup ${parent}: it would capture its own connections; run it in another cgroup`,
        );
      }
      capture = { podCgroupParent: parent, layout, proxyCgroup, pinDir: f.pinDir ?? DEFAULT_PIN_DIR, excluded: f.exclude ?? [] };
    } catch (e) {
      errors.push(errorMessage(e));
    }
  }
  const workers = Number(f.proxyWorkers ?? "0");
  if (!Number.isInteger(workers) || workers < 0 || workers > 64)
    errors.push(`--proxy-workers '${f.proxyWorkers}': expected 0 (in the agent's thread) to 64`);
  let drainMs = 600_000;
  try {
    drainMs = durationFlag("--drain", f.drain, 600_000);
  } catch (e) {
    errors.push(errorMessage(e));
  }
  const tracing = tracingConfig(f, errors);
  const sameNodeSplice = f.sameNodeSplice ?? "kernel";
  if (sameNodeSplice !== "kernel" && sameNodeSplice !== "proxy")
    errors.push(`--same-node-splice '${f.sameNodeSplice}': expected kernel or proxy`);
  return {
    proxyAddress: f.proxyAddress,
    hboneAddress,
    capture,
    workers,
    drainMs,
    metrics: hostPort("--metrics-address", f.metricsAddress ?? `0.0.0.0:${PORT_METRICS}`, errors),
    readiness: hostPort("--readiness-address", f.readinessAddress ?? `0.0.0.0:${PORT_READINESS}`, errors),
    limits: parseLimits(DEFAULT_PROXY_LIMITS, f.limit ?? [], "--limit", errors),
    ...(tracing ? { tracing } : {}),
    sameNodeSplice: sameNodeSplice === "proxy" ? "proxy" : "kernel",
  };
}
