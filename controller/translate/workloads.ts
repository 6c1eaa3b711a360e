/** Pods → Workloads: identity, addresses, node, telemetry names, and enrolment with its reason. */
import { isIP } from "node:net";
import { type KubeObject, LABELS, type NodeStatus, type PodSpec, type PodStatus } from "../api/kube-types.js";
import { spiffeId, type Workload } from "../api/model.js";
import { type Diagnostic, type Diagnostics, refOf, type TranslateOptions } from "./types.js";
import { wireProblem } from "./wire-guard.js";

/** Pod annotation Istio sets on sidecar-injected pods; those are never captured by a node proxy. */
const ISTIO_SIDECAR_STATUS = "sidecar.istio.io/status";

/** Whether a pod is enrolled, and the reason an operator sees. */
export function enrolment(pod: KubeObject<PodSpec>, namespace: KubeObject | undefined): { enrolled: boolean; reason: string } {
  const labels = pod.metadata.labels ?? {};
  const nsLabels = namespace?.metadata.labels ?? {};
  const ns = pod.metadata.namespace ?? "default";
  if (labels[LABELS.mesh] === "disabled") return { enrolled: false, reason: `pod has ${LABELS.mesh}=disabled` };
  if (labels[LABELS.istioDataplaneMode] === "none") return { enrolled: false, reason: `pod has ${LABELS.istioDataplaneMode}=none` };
  if (pod.spec?.hostNetwork)
    return { enrolled: false, reason: "pod uses hostNetwork: it shares the node's network and cannot be captured" };
  if (pod.metadata.annotations?.[ISTIO_SIDECAR_STATUS])
    return { enrolled: false, reason: "pod has an Istio sidecar, which handles its traffic" };
  if (labels[LABELS.mesh] === "enabled") return { enrolled: true, reason: `pod has ${LABELS.mesh}=enabled` };
  if (labels[LABELS.istioDataplaneMode] === "ambient") return { enrolled: true, reason: `pod has ${LABELS.istioDataplaneMode}=ambient` };
  if (nsLabels[LABELS.mesh] === "enabled") return { enrolled: true, reason: `namespace ${ns} has ${LABELS.mesh}=enabled` };
  if (nsLabels[LABELS.istioDataplaneMode] === "ambient") {
    return { enrolled: true, reason: `namespace ${ns} has ${LABELS.istioDataplaneMode}=ambient` };
  }
  return { enrolled: false, reason: `namespace ${ns} is not enrolled (label it ${LABELS.mesh}=enabled)` };
}

/** Workload name for telemetry: the owning Deployment (ReplicaSet minus its hash), other owner, or the pod. */
export function workloadName(pod: KubeObject): string {
  const owner = pod.metadata.ownerReferences?.find((o) => o.controller) ?? pod.metadata.ownerReferences?.[0];
  if (!owner) return pod.metadata.name;
  if (owner.kind === "ReplicaSet") {
    const hash = pod.metadata.labels?.["pod-template-hash"];
    if (hash && owner.name.endsWith(`-${hash}`)) return owner.name.slice(0, -(hash.length + 1));
  }
  if (owner.kind === "Job") {
    // A CronJob's Jobs are "<cronjob>-<scheduled time>": report the CronJob, as Istio does.
    const m = /^(.+)-\d{8,}$/.exec(owner.name);
    if (m) return m[1] as string;
  }
  return owner.name;
}

/** Istio's canonical service name and revision labels, with their fallbacks. */
export function canonical(labels: Record<string, string>, fallbackName: string): { name: string; revision: string } {
  return {
    name: labels["service.istio.io/canonical-name"] ?? labels["app.kubernetes.io/name"] ?? labels.app ?? fallbackName,
    revision: labels["service.istio.io/canonical-revision"] ?? labels["app.kubernetes.io/version"] ?? labels.version ?? "latest",
  };
}

/** Pod IPs, IPv4 first (status.podIPs, else status.podIP). */
export function podAddresses(status: PodStatus | undefined): string[] {
  const ips = status?.podIPs?.map((p) => p.ip) ?? (status?.podIP ? [status.podIP] : []);
  const valid = [...new Set(ips.filter((ip) => typeof ip === "string" && isIP(ip) !== 0))];
  return [...valid.filter((ip) => isIP(ip) === 4), ...valid.filter((ip) => isIP(ip) === 6)];
}

/** A Node's InternalIP (IPv4 first). */
export function nodeInternalIp(node: KubeObject<unknown, NodeStatus> | undefined): string | undefined {
  const internal = (node?.status?.addresses ?? []).filter((a) => a.type === "InternalIP" && isIP(a.address) !== 0).map((a) => a.address);
  return internal.find((a) => isIP(a) === 4) ?? internal[0];
}

/** One pod's translation: the workload (or null when the pod is not one) and its diagnostics. */
interface PodResult {
  workload: Workload | null;
  diagnostics: Diagnostic[];
}

/** What a pod's translation read; the same inputs (by reference) give the same result. */
interface PodMemo {
  ns: KubeObject | undefined;
  node: KubeObject | undefined;
  opts: TranslateOptions;
  result: PodResult;
}

/**
 * Memo of pod translations across runs, keyed by the pod object. Sources replace an object when
 * it changes, so an unchanged pod (with unchanged namespace and node) is not translated again and
 * keeps its Workload object, which the push then need not encode again either.
 */
export type WorkloadMemo = WeakMap<KubeObject, PodMemo>;

function translatePod(
  pod: KubeObject<PodSpec, PodStatus>,
  nsObj: KubeObject | undefined,
  nodeObj: KubeObject | undefined,
  opts: TranslateOptions,
): PodResult {
  const diagnostics: Diagnostic[] = [];
  const ns = pod.metadata.namespace ?? "default";
  if (!pod.metadata.uid) {
    return { workload: null, diagnostics: [{ ref: refOf(pod), severity: "error", message: "pod has no metadata.uid; skipped" }] };
  }
  const phase = pod.status?.phase;
  if (phase === "Succeeded" || phase === "Failed") return { workload: null, diagnostics };
  const addresses = podAddresses(pod.status);
  const node = pod.spec?.nodeName;
  // hostNetwork pods share the node's address and are never captured: not workloads of the mesh.
  if (addresses.length === 0 || !node || pod.spec?.hostNetwork) return { workload: null, diagnostics };
  // A mirror (static) pod is made by its node's kubelet, which the API server lets name any
  // namespace but no service account: its "default" would be whatever the node asked for. It
  // gets no identity, as Istio's CA node authorizer skips such pods.
  if (pod.metadata.annotations?.["kubernetes.io/config.mirror"] !== undefined) {
    diagnostics.push({
      ref: refOf(pod),
      severity: "warning",
      message:
        "mirror (static) pod: its service account is not the API server's to vouch for, so it gets no mesh identity and stays out of the mesh",
    });
    return { workload: null, diagnostics };
  }
  const labels = { ...(pod.metadata.labels ?? {}) };
  const sa = pod.spec?.serviceAccountName || "default";
  const name = workloadName(pod);
  const can = canonical(labels, name);
  const { enrolled, reason } = enrolment(pod, nsObj);
  const hostIp = pod.status?.hostIP && isIP(pod.status.hostIP) !== 0 ? pod.status.hostIP : undefined;
  const nodeAddress = hostIp ?? nodeInternalIp(nodeObj as KubeObject<unknown, NodeStatus> | undefined) ?? "";
  if (nodeAddress === "" && enrolled) {
    diagnostics.push({
      ref: refOf(pod),
      severity: "warning",
      message: `no node address for ${node} (no status.hostIP and no Node InternalIP): other nodes cannot reach it over HBONE`,
    });
  }
  const ready = (pod.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True") && !pod.metadata.deletionTimestamp;
  return {
    diagnostics,
    workload: {
      uid: pod.metadata.uid,
      name: pod.metadata.name,
      namespace: ns,
      serviceAccount: sa,
      identity: spiffeId(opts.trustDomain, ns, sa),
      addresses,
      node,
      nodeAddress,
      labels,
      workloadName: name,
      canonicalName: can.name,
      canonicalRevision: can.revision,
      enrolled,
      enrolmentReason: reason,
      ready,
    },
  };
}

/** One pod, guarded: a pod that cannot be translated, or that agents would refuse, is reported and skipped. */
function guardedPod(
  pod: KubeObject<PodSpec, PodStatus>,
  nsObj: KubeObject | undefined,
  nodeObj: KubeObject | undefined,
  opts: TranslateOptions,
): PodResult {
  let r: PodResult;
  try {
    r = translatePod(pod, nsObj, nodeObj, opts);
  } catch (e) {
    return {
      workload: null,
      diagnostics: [{ ref: refOf(pod), severity: "error", message: `could not be translated: ${(e as Error).message}; pod skipped` }],
    };
  }
  const problem = r.workload ? wireProblem("Workload", r.workload) : undefined;
  if (!problem) return r;
  return {
    workload: null,
    diagnostics: [...r.diagnostics, { ref: refOf(pod), severity: "error", message: `invalid: ${problem}; pod skipped` }],
  };
}

/**
 * Translates pods. Pods without an IP or a node (pending), finished ones and hostNetwork ones are
 * not workloads (normal, not reported); a pod without a uid is invalid.
 */
export function translateWorkloads(
  pods: readonly KubeObject[],
  namespaces: ReadonlyMap<string, KubeObject>,
  nodes: ReadonlyMap<string, KubeObject>,
  opts: TranslateOptions,
  diags: Diagnostics,
  memo?: WorkloadMemo,
): Workload[] {
  const found: { w: Workload; pod: KubeObject; terminating: boolean }[] = [];
  for (const obj of pods) {
    const pod = obj as KubeObject<PodSpec, PodStatus>;
    const nsObj = namespaces.get(pod.metadata.namespace ?? "default");
    const nodeObj = pod.spec?.nodeName ? nodes.get(pod.spec.nodeName) : undefined;
    const hit = memo?.get(pod);
    let result: PodResult;
    if (hit && hit.ns === nsObj && hit.node === nodeObj && hit.opts === opts) result = hit.result;
    else {
      result = guardedPod(pod, nsObj, nodeObj, opts);
      memo?.set(pod, { ns: nsObj, node: nodeObj, opts, result });
    }
    diags.list.push(...result.diagnostics);
    if (result.workload) found.push({ w: result.workload, pod, terminating: Boolean(pod.metadata.deletionTimestamp) });
  }
  // A Terminating pod keeps its IP for a while, and the IP may already be a new pod's: the live
  // pod keeps the address and the terminating one leaves the address index. Two live pods
  // claiming one IP both stay workloads, and the agents' view trusts neither with the address
  // (MeshView.isClashingAddress): traffic fails closed instead of going to whichever sorts first.
  const byAddress = new Map<string, Workload>();
  for (const { w, pod, terminating } of found) {
    if (terminating) continue;
    for (const a of w.addresses) {
      const clash = byAddress.get(a);
      if (clash)
        diags.warn(refOf(pod), `address ${a} is also claimed by pod ${clash.namespace}/${clash.name}; traffic to and from it is refused`);
      else byAddress.set(a, w);
    }
  }
  const out: Workload[] = [];
  for (const { w, pod, terminating } of found) {
    if (!terminating) {
      out.push(w);
      continue;
    }
    const addresses = w.addresses.filter((a) => !byAddress.has(a));
    if (addresses.length === w.addresses.length) {
      out.push(w);
      continue;
    }
    diags.warn(refOf(pod), "terminating pod's address now belongs to a live pod; the terminating pod leaves the address index");
    if (addresses.length > 0) out.push({ ...w, addresses });
  }
  return out;
}
