/**
 * The local cluster's operations: up, down, pods, services, labels. Each runs under the
 * cluster's lock and records intent in the state before touching the kernel, so a crash at any
 * point leaves something `down` can clean.
 */
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { cgroupPath, createCgroup, killCgroup, removeCgroupTree } from "../../native/cgroup.js";
import { type CleanupReport, ownedNetns, teardown } from "./cleanup.js";
import { syncServiceRules } from "./kube-proxy.js";
import { createFabric, createNode, createPodNetwork, deletePodNetwork, routeNode } from "./network.js";
import { checkAddressClash, requireRoot, requireTools } from "./preflight.js";
import { resolvePlace, spawnDetached } from "./processes.js";
import {
  type ClusterState,
  loadState,
  type PodRecord,
  type ProcessRecord,
  type ServicePort,
  type ServiceRecord,
  saveState,
  stateDir,
  withLock,
} from "./state.js";
import { syncStore } from "./store.js";
import { type ClusterSpec, MAX_PODS_PER_NODE, podCgroupTop, Topology, validateSpec } from "./topology.js";

/** Options of `up` beyond the spec. */
export interface UpOptions {
  /** File store directory; default <state dir>/store. */
  storeDir?: string;
  /** Namespace of the generic pods `up` creates. */
  namespace?: string;
}

/** Creates a cluster; on any failure removes what it made and rethrows. */
export async function clusterUp(spec: ClusterSpec, opts: UpOptions = {}): Promise<ClusterState> {
  requireRoot("weft cluster up");
  const errors = validateSpec(spec);
  if (errors.length) throw new Error(`invalid cluster spec:\n  ${errors.join("\n  ")}`);
  requireTools();
  const topo = new Topology(spec);
  return withLock(spec.name, async () => {
    const existing = loadState(spec.name);
    if (existing) {
      throw new Error(
        `cluster '${spec.name}' already exists (${existing.nodes.length} nodes, ${existing.pods.length} pods, ${existing.phase}); run 'weft cluster down${nameFlag(spec.name)}' first`,
      );
    }
    const leftovers = ownedNetns(spec.name, false);
    if (leftovers.length) {
      throw new Error(
        `leftovers of an earlier '${spec.name}' cluster exist (${leftovers.slice(0, 3).join(", ")}${leftovers.length > 3 ? ", …" : ""}); run 'weft cluster down${nameFlag(spec.name)}' to clean them up`,
      );
    }
    await checkAddressClash(topo);
    const now = new Date().toISOString();
    const state: ClusterState = {
      version: 1,
      spec,
      phase: "creating",
      createdAt: now,
      storeDir: opts.storeDir ?? join(stateDir(spec.name), "store"),
      nodes: [],
      namespaces: [],
      pods: [],
      services: [],
      processes: [],
      nextVethSeq: 1,
      nextVip: 0,
    };
    saveState(state);
    try {
      await createFabric(topo);
      for (let n = 1; n <= spec.nodes; n++) {
        state.nodes.push(n);
        saveState(state);
        await createNode(topo, n);
        createCgroup(topo.podParentCgroup(n));
        createCgroup(topo.systemCgroup(n));
      }
      for (const n of state.nodes) await routeNode(topo, n, state.nodes);
      const ns = opts.namespace ?? "default";
      ensureNamespace(state, ns);
      for (const n of state.nodes) {
        for (let k = 1; k <= spec.podsPerNode; k++) {
          const name = `n${n}-p${k}`;
          await createPod(state, { namespace: ns, name, node: n, labels: { app: name }, serviceAccount: "default" });
        }
      }
      state.phase = "ready";
      saveState(state);
      syncStore(state);
      return state;
    } catch (e) {
      await teardown(spec.name, state).catch(() => undefined);
      throw e;
    }
  });
}

/** Tears a cluster down (state or not); `all` removes every weft cluster's objects. */
export async function clusterDown(name: string, all = false): Promise<CleanupReport> {
  requireRoot("weft cluster down");
  return withLock(name, async () => {
    let state: ClusterState | null = null;
    try {
      state = loadState(name);
    } catch {
      // unreadable state: clean up by name alone
    }
    return teardown(name, state, all);
  });
}

/** Requested pod, before an address is allocated. */
export interface PodRequest {
  namespace: string;
  name: string;
  node: number;
  labels: Record<string, string>;
  serviceAccount: string;
}

/** Adds a pod to a running cluster and updates the store. */
export async function addPod(clusterName: string, req: PodRequest): Promise<PodRecord> {
  requireRoot("weft cluster add-pod");
  return mutate(clusterName, async (state) => {
    ensureNamespace(state, req.namespace);
    return createPod(state, req);
  });
}

/** Removes a pod (its processes, netns and cgroup) and updates the store. */
export async function removePod(clusterName: string, namespace: string, name: string): Promise<void> {
  requireRoot("weft cluster remove-pod");
  await mutate(clusterName, async (state) => {
    const pod = findPod(state, namespace, name);
    // The store changes first: the mesh stops routing to the pod before it disappears.
    state.pods = state.pods.filter((p) => p !== pod);
    saveState(state);
    syncStore(state);
    await destroyPod(pod);
  });
}

/** Adds (or replaces) a service; its VIP is kept across replacements. */
export async function addService(
  clusterName: string,
  svc: { namespace: string; name: string; ports: ServicePort[]; selector: Record<string, string> },
): Promise<ServiceRecord> {
  return mutate(clusterName, async (state) => {
    const topo = new Topology(state.spec);
    ensureNamespace(state, svc.namespace);
    const old = state.services.find((s) => s.namespace === svc.namespace && s.name === svc.name);
    if (!old && state.nextVip >= topo.vipCapacity) throw new Error(`service CIDR ${state.spec.serviceCidr} is full`);
    const rec: ServiceRecord = {
      ...svc,
      uid: old?.uid ?? randomUUID(),
      vip: old?.vip ?? topo.serviceVip(state.nextVip++),
      createdAt: old?.createdAt ?? new Date().toISOString(),
    };
    state.services = [...state.services.filter((s) => s !== old), rec];
    return rec;
  });
}

/** Removes a service. */
export async function removeService(clusterName: string, namespace: string, name: string): Promise<void> {
  await mutate(clusterName, async (state) => {
    const before = state.services.length;
    state.services = state.services.filter((s) => !(s.namespace === namespace && s.name === name));
    if (state.services.length === before) throw new Error(`no service '${namespace}/${name}' in cluster '${clusterName}'`);
  });
}

/** Label changes: "k=v" sets, "k-" removes (as kubectl label). */
export function applyLabelEdits(labels: Record<string, string>, edits: readonly string[]): Record<string, string> {
  const out = { ...labels };
  for (const edit of edits) {
    if (edit.endsWith("-") && !edit.includes("=")) {
      delete out[edit.slice(0, -1)];
      continue;
    }
    const i = edit.indexOf("=");
    if (i <= 0) throw new Error(`label '${edit}': expected key=value to set or key- to remove`);
    const key = edit.slice(0, i);
    const value = edit.slice(i + 1);
    if (!/^([a-z0-9.-]+\/)?[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$/.test(key))
      throw new Error(`label key '${key}' is not a valid Kubernetes label key`);
    if (!/^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$/.test(value))
      throw new Error(`label value '${value}' (key ${key}) is not a valid Kubernetes label value`);
    out[key] = value;
  }
  return out;
}

/** Sets/removes labels on a namespace (creating it if needed) or on a pod. */
export async function label(
  clusterName: string,
  kind: "namespace" | "pod",
  target: string,
  edits: readonly string[],
  namespace = "default",
): Promise<Record<string, string>> {
  return mutate(clusterName, async (state) => {
    if (kind === "namespace") {
      const ns = ensureNamespace(state, target);
      ns.labels = applyLabelEdits(ns.labels, edits);
      return ns.labels;
    }
    const pod = findPod(state, namespace, target);
    pod.labels = applyLabelEdits(pod.labels, edits);
    return pod.labels;
  });
}

/** Starts a recorded background process in a pod, node or the fabric; returns its pid. */
export async function runDetached(
  clusterName: string,
  target: string,
  argv: readonly string[],
  opts: { what?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<ProcessRecord> {
  return withLock(clusterName, async () => {
    const state = requireState(clusterName);
    const place = resolvePlace(state, target);
    const rec = spawnDetached(state, place, argv, {
      what: opts.what ?? `${target} ${argv[0] ?? ""}`,
      ...(opts.env ? { env: opts.env } : {}),
    });
    state.processes.push(rec);
    saveState(state);
    return rec;
  });
}

/**
 * Kubernetes-style service environment for pods of a namespace (<NAME>_SERVICE_HOST/_PORT),
 * which is how apps find services in a cluster without DNS.
 */
export function serviceEnv(state: ClusterState, namespace: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const s of state.services.filter((x) => x.namespace === namespace)) {
    const key = s.name.toUpperCase().replace(/-/g, "_");
    env[`${key}_SERVICE_HOST`] = s.vip;
    env[`${key}_SERVICE_PORT`] = String(s.ports[0]?.port ?? "");
  }
  return env;
}

/** Reads a cluster's state or fails with how to create one. */
export function requireState(name: string): ClusterState {
  const state = loadState(name);
  if (!state) throw new Error(`no cluster '${name}' is running; start one with 'weft cluster up${nameFlag(name)}'`);
  return state;
}

/** Runs a change under the lock, then saves the state and syncs the store. */
export async function mutate<T>(name: string, fn: (state: ClusterState) => Promise<T>): Promise<T> {
  return withLock(name, async () => {
    const state = requireState(name);
    if (state.phase !== "ready")
      throw new Error(`cluster '${name}' is still being created (or its creation crashed); run 'weft cluster down${nameFlag(name)}'`);
    const result = await fn(state);
    saveState(state);
    syncStore(state);
    await syncServiceRules(state);
    return result;
  });
}

function nameFlag(name: string): string {
  return name === "weft" ? "" : ` --name ${name}`;
}

function findPod(state: ClusterState, namespace: string, name: string): PodRecord {
  const pod = state.pods.find((p) => p.namespace === namespace && p.name === name);
  if (!pod) throw new Error(`no pod '${namespace}/${name}' in cluster '${state.spec.name}'`);
  return pod;
}

function ensureNamespace(state: ClusterState, name: string) {
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(name)) throw new Error(`namespace '${name}' is not a valid DNS label`);
  let ns = state.namespaces.find((n) => n.name === name);
  if (!ns) {
    ns = { name, uid: randomUUID(), labels: {}, createdAt: new Date().toISOString() };
    state.namespaces.push(ns);
  }
  return ns;
}

async function destroyPod(pod: PodRecord): Promise<void> {
  killCgroup(cgroupPath(pod.cgroup));
  await deletePodNetwork(pod.netns);
  const top = cgroupPath(podCgroupTop(pod.cgroup));
  for (let i = 0; i < 50 && removeCgroupTree(top).length > 0; i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function createPod(state: ClusterState, req: PodRequest): Promise<PodRecord> {
  const topo = new Topology(state.spec);
  if (!/^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$/.test(req.name))
    throw new Error(`pod name '${req.name}' is not a valid DNS subdomain (lowercase letters, digits, '-', '.')`);
  if (!state.nodes.includes(req.node)) throw new Error(`node ${req.node} does not exist (cluster has nodes 1…${state.nodes.length})`);
  if (state.pods.some((p) => p.namespace === req.namespace && p.name === req.name))
    throw new Error(`pod '${req.namespace}/${req.name}' already exists`);
  const used = new Set(state.pods.filter((p) => p.node === req.node).map((p) => p.slot));
  let slot = 2;
  while (used.has(slot)) slot++;
  if (slot > MAX_PODS_PER_NODE + 1) throw new Error(`node ${req.node} has no free pod address (max ${MAX_PODS_PER_NODE} pods)`);
  const uid = randomUUID();
  const pod: PodRecord = {
    ...req,
    uid,
    ip: topo.podIp(req.node, slot),
    slot,
    netns: topo.podNetns(req.namespace, req.name),
    cgroup: topo.podCgroup(req.node, req.namespace, req.name, uid),
    hostVeth: topo.hostVeth(state.nextVethSeq++),
    createdAt: new Date().toISOString(),
  };
  // Recorded before creation: a crash in between leaves a netns down can find by its name.
  state.pods.push(pod);
  saveState(state);
  try {
    await createPodNetwork(topo, pod);
    createCgroup(pod.cgroup);
  } catch (e) {
    // Never leave half a pod: drop its record and whatever of it exists.
    state.pods = state.pods.filter((p) => p !== pod);
    saveState(state);
    await destroyPod(pod).catch(() => undefined);
    throw e;
  }
  return pod;
}
