/** Services + EndpointSlices → Services with VIPs, resolved target ports, protocols and endpoints. */
import { isIP } from "node:net";
import { type EndpointSlice, type KubeObject, LABELS, type PodSpec, type ServiceSpec } from "../api/kube-types.js";
import type { AppProtocol, Endpoint, Service, ServicePort } from "../api/model.js";
import { type Diagnostic, type Diagnostics, refOf, type TranslateOptions } from "./types.js";
import { wireProblem } from "./wire-guard.js";

/** Istio's port-name prefixes of protocols that are not HTTP: never sniffed. */
const KNOWN_NON_HTTP = new Set(["tcp", "tls", "https", "mongo", "mysql", "redis", "udp", "kafka"]);

/**
 * Protocol of a port from appProtocol, else Istio's port-name convention ("http-web", "grpc",
 * "tcp-db"); a port that says neither is "auto" (sniffed by the proxy). An appProtocol weft does
 * not speak ("mysql", "kafka") is TCP: the user said what it is, and it is not HTTP.
 */
export function appProtocolOf(appProtocol: string | undefined, portName: string | undefined): AppProtocol {
  const ap = appProtocol?.toLowerCase();
  if (ap) {
    if (ap === "http" || ap === "http1" || ap === "kubernetes.io/ws") return "http";
    if (ap === "http2" || ap === "kubernetes.io/h2c") return "http2";
    if (ap === "grpc" || ap === "grpc-web") return ap === "grpc" ? "grpc" : "http";
    return "tcp";
  }
  const prefix = /^([a-z0-9]+)(?:-|$)/.exec((portName ?? "").toLowerCase())?.[1];
  if (prefix === "http") return "http";
  if (prefix === "http2") return "http2";
  if (prefix === "grpc") return "grpc";
  if (prefix === "grpcweb") return "http";
  if (prefix === undefined || prefix === "") return "auto";
  return KNOWN_NON_HTTP.has(prefix) ? "tcp" : "auto";
}

/** EndpointSlices grouped by "<namespace>/<service name>". */
export function slicesByService(slices: readonly KubeObject[]): Map<string, EndpointSlice[]> {
  const out = new Map<string, EndpointSlice[]>();
  for (const s of slices as readonly EndpointSlice[]) {
    const svc = s.metadata.labels?.[LABELS.serviceName];
    if (!svc) continue;
    const key = `${s.metadata.namespace ?? "default"}/${svc}`;
    const list = out.get(key);
    if (list) list.push(s);
    else out.set(key, [s]);
  }
  return out;
}

/** A named targetPort resolved from the endpoint pods' container ports (when no slice says it). */
function containerPort(name: string, endpoints: readonly Endpoint[], pods: ReadonlyMap<string, KubeObject>): number | undefined {
  for (const e of endpoints) {
    const pod = pods.get(e.workloadUid) as KubeObject<PodSpec> | undefined;
    for (const c of pod?.spec?.containers ?? []) {
      const p = c.ports?.find((cp) => cp.name === name);
      if (p) return p.containerPort;
    }
  }
  return undefined;
}

function endpointsOf(slices: readonly EndpointSlice[]): Endpoint[] {
  const byAddress = new Map<string, Endpoint>();
  for (const slice of slices) {
    if (slice.addressType === "FQDN") continue;
    for (const ep of slice.endpoints ?? []) {
      // Kubernetes: an unset ready condition means ready; terminating endpoints are not.
      const ready = ep.conditions?.ready !== false && ep.conditions?.terminating !== true;
      const uid = ep.targetRef?.kind === "Pod" ? (ep.targetRef.uid ?? "") : "";
      for (const address of ep.addresses ?? []) {
        if (isIP(address) === 0) continue;
        const prev = byAddress.get(address);
        if (!prev || (!prev.ready && ready)) byAddress.set(address, { workloadUid: uid, address, ready });
      }
    }
  }
  return [...byAddress.values()].sort((a, b) => a.address.localeCompare(b.address));
}

interface ServiceResult {
  service: Service | null;
  diagnostics: Diagnostic[];
  /** The result read pods (a named targetPort resolved from containers): not memoized. */
  readPods: boolean;
}

/** Memo of service translations, keyed by the Service object; valid while its slices are the same objects. */
export type ServiceMemo = WeakMap<KubeObject, { slices: readonly EndpointSlice[]; opts: TranslateOptions; result: ServiceResult }>;

function sameList<T>(a: readonly T[], b: readonly T[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function translateService(
  svc: KubeObject<ServiceSpec>,
  mySlices: readonly EndpointSlice[],
  podsByUid: ReadonlyMap<string, KubeObject>,
  opts: TranslateOptions,
): ServiceResult {
  const diagnostics: Diagnostic[] = [];
  const spec = svc.spec ?? {};
  if (spec.type === "ExternalName") return { service: null, diagnostics, readPods: false };
  const ns = svc.metadata.namespace ?? "default";
  const endpoints = endpointsOf(mySlices);
  const rawVips = spec.clusterIPs?.length ? spec.clusterIPs : spec.clusterIP ? [spec.clusterIP] : [];
  const vips = rawVips.filter((ip) => ip !== "None" && ip !== "");
  const badVip = vips.find((ip) => isIP(ip) === 0);
  if (badVip) {
    diagnostics.push({ ref: refOf(svc), severity: "error", message: `spec.clusterIP '${badVip}' is not an IP address; service skipped` });
    return { service: null, diagnostics, readPods: false };
  }
  let readPods = false;
  const ports: ServicePort[] = [];
  for (const [i, p] of (spec.ports ?? []).entries()) {
    if (p.protocol && p.protocol !== "TCP") continue; // the mesh carries TCP only; UDP/SCTP pass by
    if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) {
      diagnostics.push({
        ref: refOf(svc),
        severity: "error",
        message: `spec.ports[${i}].port ${String(p.port)} is not a port number; port skipped`,
      });
      continue;
    }
    const slicePort = mySlices.flatMap((sl) => sl.ports ?? []).find((sp) => (sp.name ?? "") === (p.name ?? ""));
    let target: number | undefined = slicePort?.port;
    if (target === undefined) {
      if (typeof p.targetPort === "number") target = p.targetPort;
      else if (p.targetPort === undefined) target = p.port;
      else if (/^\d+$/.test(p.targetPort)) target = Number(p.targetPort);
      else {
        readPods = true;
        target = containerPort(p.targetPort, endpoints, podsByUid);
      }
    }
    if (target === undefined || target < 1 || target > 65535) {
      if (endpoints.length > 0) {
        diagnostics.push({
          ref: refOf(svc),
          severity: "warning",
          message: `spec.ports[${i}].targetPort '${String(p.targetPort)}' cannot be resolved to a number; port skipped`,
        });
      }
      continue;
    }
    const port: ServicePort = {
      port: p.port,
      targetPort: target,
      appProtocol: appProtocolOf(p.appProtocol ?? slicePort?.appProtocol, p.name),
    };
    if (p.name) port.name = p.name;
    ports.push(port);
  }
  return {
    diagnostics,
    readPods,
    service: {
      key: `${ns}/${svc.metadata.name}`,
      name: svc.metadata.name,
      namespace: ns,
      hostname: `${svc.metadata.name}.${ns}.svc.${opts.clusterDomain}`,
      vips,
      ports,
      endpoints,
    },
  };
}

/** One service, guarded: one that cannot be translated (or that agents would refuse) is reported and skipped. */
function guardedService(
  svc: KubeObject<ServiceSpec>,
  slices: EndpointSlice[],
  pods: ReadonlyMap<string, KubeObject>,
  opts: TranslateOptions,
): ServiceResult {
  let r: ServiceResult;
  try {
    r = translateService(svc, slices, pods, opts);
  } catch (e) {
    const message = `could not be translated (or one of its EndpointSlices): ${(e as Error).message}; service skipped`;
    return { service: null, diagnostics: [{ ref: refOf(svc), severity: "error", message }], readPods: false };
  }
  const problem = r.service ? wireProblem("Service", r.service) : undefined;
  if (!problem) return r;
  return {
    ...r,
    service: null,
    diagnostics: [...r.diagnostics, { ref: refOf(svc), severity: "error", message: `invalid: ${problem}; service skipped` }],
  };
}

/** Translates Services (ExternalName ones are not routable by VIP and are left out). */
export function translateServices(
  services: readonly KubeObject[],
  slices: ReadonlyMap<string, EndpointSlice[]>,
  podsByUid: ReadonlyMap<string, KubeObject>,
  opts: TranslateOptions,
  diags: Diagnostics,
  memo?: ServiceMemo,
): Service[] {
  const out: Service[] = [];
  for (const obj of services) {
    const svc = obj as KubeObject<ServiceSpec>;
    const mySlices = slices.get(`${svc.metadata.namespace ?? "default"}/${svc.metadata.name}`) ?? [];
    const hit = memo?.get(svc);
    let result: ServiceResult;
    if (hit && hit.opts === opts && sameList(hit.slices, mySlices)) result = hit.result;
    else {
      result = guardedService(svc, mySlices, podsByUid, opts);
      if (!result.readPods) memo?.set(svc, { slices: mySlices, opts, result });
    }
    diags.list.push(...result.diagnostics);
    if (result.service) out.push(result.service);
  }
  return out;
}
