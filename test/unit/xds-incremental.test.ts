/**
 * The incremental push (each stream diffs only what changed) against the definition: after any
 * sequence of changes, what an ACKing agent holds is exactly what its node's full selection is.
 * Randomised (seeded) sequences of pod moves, enrolment flips, endpoint and policy changes.
 */
import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import { silentLogger } from "../../common/log.js";
import type { AuthorizationPolicy, Service, Workload } from "../../controller/api/model.js";
import { RESOURCE_KINDS, typeUrlOf } from "../../controller/api/resources.js";
import type { WireDeltaRequest, WireDeltaResponse } from "../../controller/api/wire-types.js";
import type { MeshModel } from "../../controller/translate/types.js";
import { XdsService } from "../../controller/xds/service.js";
import { WORKLOAD } from "../helpers/control-fixtures-model.js";

/** A tiny seeded PRNG, so a failure replays. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const NODES = ["n1", "n2", "n3"];

function model(workloads: Workload[], services: Service[], authz: AuthorizationPolicy[]): MeshModel {
  return {
    meshConfig: { trustDomain: "cluster.local", rootNamespace: "weft-system", clusterDomain: "cluster.local" },
    workloads,
    services,
    authorizationPolicies: authz,
    peerAuthentications: [],
    routes: [],
    destinationPolicies: [],
    nodes: NODES,
    diagnostics: [],
  };
}

/** A fake server stream: records responses; the test plays the agent, ACKing everything. */
class FakeCall extends EventEmitter {
  readonly metadata = { get: () => ["Bearer t"] };
  cancelled = false;
  destroyed = false;
  readonly written: WireDeltaResponse[] = [];
  getPeer(): string {
    return "fake";
  }
  write(r: WireDeltaResponse): boolean {
    this.written.push(r);
    return true;
  }
  end(): void {}
}

describe("incremental push", () => {
  it.each([1, 2, 3, 4, 5])("agents hold exactly their node's selection after random changes (seed %i)", async (seed) => {
    const rand = rng(seed);
    const pick = <T>(a: T[]): T => a[Math.floor(rand() * a.length)] as T;
    let workloads: Workload[] = Array.from({ length: 30 }, (_, i) => ({
      ...WORKLOAD,
      uid: `u${i}`,
      name: `p${i}`,
      namespace: pick(["a", "b"]),
      node: pick(NODES),
      enrolled: rand() < 0.5,
      labels: { app: `app${i % 5}` },
      addresses: [`10.244.0.${i + 1}`],
    })).map((w) => ({ ...w, identity: `spiffe://cluster.local/ns/${w.namespace}/sa/${w.serviceAccount}` }));
    let services: Service[] = Array.from({ length: 5 }, (_, i) => ({
      key: `a/s${i}`,
      name: `s${i}`,
      namespace: "a",
      hostname: `s${i}.a.svc.cluster.local`,
      vips: [`10.96.0.${i + 1}`],
      ports: [{ port: 80, targetPort: 80, appProtocol: "tcp" }],
      endpoints: [],
    }));
    let authz: AuthorizationPolicy[] = [];

    const xds = new XdsService({ authenticate: async () => ({ node: "?", via: "test" }) }, silentLogger());
    xds.update(model(workloads, services, authz), { trustDomain: "cluster.local", rootsPem: ["x"], signingRootSha256: "0".repeat(64) });
    // Streams, one per node, opened through the service's handler as the real server does.
    const calls = new Map<string, FakeCall>();
    for (const node of NODES) {
      const call = new FakeCall();
      calls.set(node, call);
      const auth = { authenticate: async () => ({ node, via: "test" }) };
      (xds as unknown as { auth: typeof auth }).auth = auth;
      xds.handlers().DeltaStream(call as never);
      await new Promise((r) => setImmediate(r));
      for (const [i, k] of RESOURCE_KINDS.entries()) {
        call.emit("data", {
          node: i === 0 ? { name: node, agentVersion: "t" } : null,
          typeUrl: typeUrlOf(k),
          subscribe: ["*"],
          unsubscribe: [],
          initialResourceVersions: {},
          responseNonce: "",
          errorDetail: null,
        } satisfies WireDeltaRequest);
      }
    }
    const held = new Map(NODES.map((n) => [n, new Map<string, Map<string, string>>()]));
    const settle = () => {
      for (let round = 0; round < 10; round++) {
        let any = false;
        for (const [node, call] of calls) {
          for (const r of call.written.splice(0)) {
            any = true;
            const h = held.get(node) as Map<string, Map<string, string>>;
            const m = h.get(r.typeUrl) ?? new Map<string, string>();
            h.set(r.typeUrl, m);
            for (const x of r.resources) m.set(x.name, x.version);
            for (const n of r.removedResources) m.delete(n);
            call.emit("data", {
              node: null,
              typeUrl: r.typeUrl,
              subscribe: [],
              unsubscribe: [],
              initialResourceVersions: {},
              responseNonce: r.nonce,
              errorDetail: null,
            });
          }
        }
        if (!any) return;
      }
    };
    const check = (step: number) => {
      const set = xds.resources;
      if (!set) throw new Error("no state");
      for (const node of NODES) {
        for (const k of RESOURCE_KINDS) {
          const want = Object.fromEntries([...set.forNode(node, k)].map((r) => [r.name, r.version]));
          const got = Object.fromEntries(held.get(node)?.get(typeUrlOf(k)) ?? []);
          expect(got, `seed ${seed} step ${step} node ${node} ${k}`).toEqual(want);
        }
      }
    };
    settle();
    check(0);
    for (let step = 1; step <= 60; step++) {
      const i = Math.floor(rand() * workloads.length);
      const w = workloads[i] as Workload;
      switch (Math.floor(rand() * 6)) {
        case 0:
          workloads = workloads.map((x, j) => (j === i ? { ...w, node: pick(NODES) } : x));
          break;
        case 1:
          workloads = workloads.map((x, j) => (j === i ? { ...w, enrolled: !w.enrolled } : x));
          break;
        case 2:
          workloads = workloads.map((x, j) => (j === i ? { ...w, labels: { app: `app${Math.floor(rand() * 5)}` } } : x));
          break;
        case 3: {
          const s = Math.floor(rand() * services.length);
          services = services.map((x, j) =>
            j === s ? { ...x, endpoints: rand() < 0.3 ? [] : [{ workloadUid: w.uid, address: w.addresses[0] as string, ready: true }] } : x,
          );
          break;
        }
        case 4:
          authz =
            rand() < 0.5 && authz.length
              ? authz.slice(1)
              : [
                  ...authz,
                  {
                    key: `a/p${step}`,
                    name: `p${step}`,
                    namespace: "a",
                    scope: { kind: "workload", selector: { app: `app${Math.floor(rand() * 5)}` } },
                    action: "ALLOW",
                    rules: [],
                  },
                ];
          break;
        default:
          workloads =
            rand() < 0.5
              ? workloads.filter((_, j) => j !== i)
              : [...workloads, { ...w, uid: `n${step}`, name: `n${step}`, node: pick(NODES) }];
      }
      xds.update(model(workloads, services, authz), { trustDomain: "cluster.local", rootsPem: ["x"], signingRootSha256: "0".repeat(64) });
      // Sometimes the agents answer only after several pushes (responses in flight meanwhile).
      if (rand() < 0.6) {
        settle();
        check(step);
      }
    }
    settle();
    check(61);
  });
});
