/**
 * Control-plane push at scale: a controller (its own process, `weft controller` from dist/) over a
 * file store of P pods, S services, Q policies and N nodes; N agents as gRPC clients on loopback,
 * each subscribing as its own node and ACKing every response, as the agent does.
 *
 * Measures: time to full sync of all agents; time for one change to reach every agent (median and
 * worst of several changes, timed from the file write); bytes; the controller's RSS and CPU; one
 * real agent's cost of applying its full state (decode, validate, snapshot). The baseline, in the
 * same run: what a state-of-the-world push (resend everything, as non-delta xDS does) would have
 * sent for each change, against the delta that was sent.
 *
 *   node dist/bench/push-scale.js [--quick] [--pods 10000] [--services 2000] [--policies 500] [--agents 50] [--changes 5]
 *
 * Only loopback is dialled. Everything it starts (controller, temp dir) is removed at the end.
 * WEFT_BENCH_DEBUG=1 shows the controller's debug log (per-push timings); WEFT_BENCH_PROF=DIR
 * writes a CPU profile of the controller there.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { ClientDuplexStream } from "@grpc/grpc-js";
import { StateUpdater } from "../agent/state/updater.js";
import { authMetadata, controllerClient } from "../agent/xds/channel.js";
import { XdsClient } from "../agent/xds/client.js";
import { adminGet } from "../common/admin-server.js";
import { errorMessage } from "../common/errors.js";
import { silentLogger } from "../common/log.js";
import type { KubeObject } from "../controller/api/kube-types.js";
import { SERVICES, serviceDefinition } from "../controller/api/proto.js";
import { RESOURCE_KINDS, typeUrlOf } from "../controller/api/resources.js";
import type { WireDeltaRequest, WireDeltaResponse } from "../controller/api/wire-types.js";
import { emitBenchOutput } from "./lib/output.js";
import { cpuSeconds, parseStatusKb } from "./lib/proc-stats.js";
import { median } from "./lib/stats.js";

const REPO = join(import.meta.dirname, "..", "..");
const WEFT = join(REPO, "dist", "agent", "cli", "main.js");
const log = (m: string) => process.stderr.write(`push-scale: ${m}\n`);

interface Sizes {
  pods: number;
  services: number;
  policies: number;
  agents: number;
  changes: number;
}

function sizes(): Sizes & { quick: boolean } {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean" },
      pods: { type: "string" },
      services: { type: "string" },
      policies: { type: "string" },
      agents: { type: "string" },
      changes: { type: "string" },
      help: { type: "boolean" },
    },
    strict: true,
  });
  if (values.help) {
    process.stderr.write("usage: push-scale.js [--quick] [--pods N] [--services N] [--policies N] [--agents N] [--changes N]\n");
    process.exit(0);
  }
  const q = values.quick === true;
  const num = (flag: string, v: string | undefined, full: number, quick: number, max: number) => {
    if (v === undefined) return q ? quick : full;
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < 1 || n > max) throw new Error(`--${flag} '${v}': expected a whole number from 1 to ${max}`);
    return n;
  };
  return {
    quick: q,
    pods: num("pods", values.pods, 10_000, 2_000, 50_000),
    services: num("services", values.services, 2_000, 400, 10_000),
    policies: num("policies", values.policies, 500, 100, 5_000),
    agents: num("agents", values.agents, 50, 10, 200),
    changes: num("changes", values.changes, 5, 3, 50),
  };
}

/** The store: Kubernetes objects of a cluster of the given size, one per file (as the local cluster writes them). */
function writeStore(dir: string, s: Sizes): { podFile: (i: number) => string; pod: (i: number, rev: number) => KubeObject } {
  const namespaces = 20;
  const write = (o: KubeObject) => {
    const name = `${o.kind.toLowerCase()}.${o.metadata.namespace ? `${o.metadata.namespace}.` : ""}${o.metadata.name}.json`;
    writeFileSync(join(dir, name), JSON.stringify(o));
  };
  for (let n = 0; n < namespaces; n++) {
    // Half the namespaces are in the mesh: their pods go to every node's agent.
    write({ apiVersion: "v1", kind: "Namespace", metadata: { name: `ns${n}`, labels: n % 2 === 0 ? { "weft.dev/mesh": "enabled" } : {} } });
  }
  for (let a = 0; a < s.agents; a++)
    write({
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: `node${a}` },
      status: { addresses: [{ type: "InternalIP", address: `10.250.${a >> 8}.${a & 255}` }] },
    });
  const pod = (i: number, rev: number): KubeObject => {
    const node = i % s.agents;
    return {
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name: `p${i}`,
        namespace: `ns${i % namespaces}`,
        uid: `uid-${i}`,
        labels: { app: `app${Math.floor(i / 5)}`, rev: String(rev) },
      },
      spec: { nodeName: `node${node}`, serviceAccountName: `sa${i % 100}` },
      status: {
        phase: "Running",
        podIP: `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`,
        hostIP: `10.250.${node >> 8}.${node & 255}`,
        conditions: [{ type: "Ready", status: "True" }],
      },
    };
  };
  for (let i = 0; i < s.pods; i++) write(pod(i, 0));
  for (let v = 0; v < s.services; v++) {
    const ns = `ns${(v * 5) % namespaces}`;
    // Three endpoints each: with 10k pods and 2k services, 60% of pods back a service.
    const members = Array.from({ length: 3 }, (_, k) => v * 5 + k).filter((i) => i < s.pods);
    write({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: `svc${v}`, namespace: ns },
      spec: { clusterIP: `10.96.${v >> 8}.${v & 255}`, ports: [{ name: "http", port: 80, targetPort: 8080 }] },
    });
    write({
      apiVersion: "discovery.k8s.io/v1",
      kind: "EndpointSlice",
      metadata: { name: `svc${v}-x`, namespace: ns, labels: { "kubernetes.io/service-name": `svc${v}` } },
      addressType: "IPv4",
      endpoints: members.map((i) => ({
        addresses: [(pod(i, 0).status as { podIP: string }).podIP],
        conditions: { ready: true },
        targetRef: { kind: "Pod", name: `p${i}`, uid: `uid-${i}` },
      })),
      ports: [{ name: "http", port: 8080 }],
    } as unknown as KubeObject);
  }
  for (let q = 0; q < s.policies; q++) {
    const ns = `ns${q % namespaces}`;
    const kind = q % 10;
    if (kind < 6) {
      write({
        apiVersion: "security.istio.io/v1",
        kind: "AuthorizationPolicy",
        metadata: { name: `ap${q}`, namespace: ns },
        spec: {
          selector: q % 2 ? { matchLabels: { app: `app${q}` } } : undefined,
          rules: [
            { from: [{ source: { principals: [`cluster.local/ns/${ns}/sa/sa${q % 100}`] } }], to: [{ operation: { ports: ["8080"] } }] },
          ],
        },
      });
    } else if (kind < 7) {
      write({
        apiVersion: "security.istio.io/v1",
        kind: "PeerAuthentication",
        metadata: { name: `pa${q}`, namespace: ns },
        spec: { mtls: { mode: "STRICT" } },
      });
    } else if (kind < 9) {
      write({
        apiVersion: "networking.istio.io/v1",
        kind: "VirtualService",
        metadata: { name: `vs${q}`, namespace: ns },
        spec: {
          hosts: [`svc${(q * 3) % s.services}.${`ns${(((q * 3) % s.services) * 5) % namespaces}`}`],
          http: [
            {
              timeout: "2s",
              retries: { attempts: 2, retryOn: "5xx" },
              route: [{ destination: { host: `svc${(q * 3) % s.services}.ns${(((q * 3) % s.services) * 5) % namespaces}` } }],
            },
          ],
        },
      });
    } else {
      write({
        apiVersion: "networking.istio.io/v1",
        kind: "DestinationRule",
        metadata: { name: `dr${q}`, namespace: ns },
        spec: {
          host: `svc${q % s.services}.ns${((q % s.services) * 5) % namespaces}`,
          trafficPolicy: { connectionPool: { tcp: { maxConnections: 100 } }, outlierDetection: { consecutive5xxErrors: 5 } },
        },
      });
    }
  }
  return { podFile: (i) => join(dir, `pod.ns${i % namespaces}.p${i}.json`), pod };
}

/** One simulated agent: a raw stream that ACKs everything and counts what it received. */
class FakeAgent {
  readonly firstResponse = new Set<string>();
  bytes = 0;
  responses: WireDeltaResponse[] = [];
  private call: ClientDuplexStream<WireDeltaRequest, WireDeltaResponse> | undefined;
  onResponse: ((r: WireDeltaResponse) => void) | undefined;

  constructor(
    readonly node: string,
    private readonly target: string,
    private readonly tokenFile: string,
    private readonly caPem: string,
  ) {}

  open(): void {
    const endpoint = { target: this.target, tokenFile: this.tokenFile, roots: () => [this.caPem] };
    const client = controllerClient(endpoint);
    const def = serviceDefinition(SERVICES.discovery).DeltaStream as NonNullable<ReturnType<typeof serviceDefinition>[string]>;
    const md = authMetadata(endpoint);
    const call = client.makeBidiStreamRequest(
      def.path,
      def.requestSerialize as (v: WireDeltaRequest) => Buffer,
      def.responseDeserialize as (b: Buffer) => WireDeltaResponse,
      md,
    );
    this.call = call;
    const send = (r: Partial<WireDeltaRequest>) =>
      call.write({
        node: null,
        typeUrl: "",
        subscribe: [],
        unsubscribe: [],
        initialResourceVersions: {},
        responseNonce: "",
        errorDetail: null,
        ...r,
      });
    call.on("data", (r: WireDeltaResponse) => {
      this.bytes += r.resources.reduce((n, x) => n + x.body.length + x.name.length + x.version.length, 0);
      this.firstResponse.add(r.typeUrl);
      this.responses.push(r);
      send({ typeUrl: r.typeUrl, responseNonce: r.nonce });
      this.onResponse?.(r);
    });
    call.on("error", (e) => log(`${this.node}: stream error ${e.message}`));
    for (const [i, k] of RESOURCE_KINDS.entries())
      send({ node: i === 0 ? { name: this.node, agentVersion: "bench" } : null, typeUrl: typeUrlOf(k), subscribe: ["*"] });
  }

  get synced(): boolean {
    return this.firstResponse.size === RESOURCE_KINDS.length;
  }

  close(): void {
    this.call?.cancel();
  }
}

async function until(what: string, check: () => boolean, timeoutMs: number): Promise<number> {
  const start = performance.now();
  while (!check()) {
    if (performance.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
  return performance.now() - start;
}

function startController(store: string, state: string): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(
    process.execPath,
    [
      ...(process.env.WEFT_BENCH_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.WEFT_BENCH_PROF}`] : []),
      WEFT,
      "controller",
      "--store",
      store,
      "--listen",
      "127.0.0.1:0",
      "--state-dir",
      state,
      "--log-level",
      process.env.WEFT_BENCH_DEBUG ? "debug" : "info",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  return new Promise((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => reject(new Error("controller did not become ready in 120 s")), 120_000);
    child.stdout?.on("data", (d: Buffer) => {
      buf += d.toString();
      for (const line of buf.split("\n").slice(0, -1)) {
        if (line.includes('"controller ready"')) {
          clearTimeout(timer);
          resolve({ child, port: (JSON.parse(line) as { port: number }).port });
        }
      }
      buf = buf.slice(buf.lastIndexOf("\n") + 1);
    });
    child.stderr?.on("data", (d: Buffer) => process.stderr.write(d));
    if (process.env.WEFT_BENCH_DEBUG) child.stdout?.on("data", (d: Buffer) => process.stderr.write(d));
    child.on("exit", (code) => reject(new Error(`controller exited with ${code}`)));
  });
}

function rss(pid: number): { rssMiB: number; peakMiB: number } {
  const st = readFileSync(`/proc/${pid}/status`, "utf8");
  const mib = (bytes: number) => Math.round(bytes / 1024 / 1024);
  return { rssMiB: mib(parseStatusKb(st, "VmRSS")), peakMiB: mib(parseStatusKb(st, "VmHWM")) };
}

async function main(): Promise<void> {
  const s = sizes();
  const dir = mkdtempSync(join(tmpdir(), "weft-push-"));
  const store = join(dir, "store");
  const state = join(dir, "state");
  mkdirSync(store);
  let controller: ChildProcess | undefined;
  const agents: FakeAgent[] = [];
  try {
    log(`writing a store of ${s.pods} pods, ${s.services} services, ${s.policies} policies, ${s.agents} nodes`);
    const gen = writeStore(store, s);
    const t0 = performance.now();
    const c = await startController(store, state);
    controller = c.child;
    const loadMs = performance.now() - t0;
    const pid = controller.pid as number;
    log(`controller ready in ${Math.round(loadMs)} ms (pid ${pid}, port ${c.port})`);
    const idle = rss(pid);
    const caPem = readFileSync(join(state, "ca", "root-cert.pem"), "utf8");
    const target = `127.0.0.1:${c.port}`;
    const cpu0 = cpuSeconds(pid);
    for (let a = 0; a < s.agents; a++) {
      const ag = new FakeAgent(`node${a}`, target, join(state, "tokens", `node${a}.token`), caPem);
      agents.push(ag);
      ag.open();
    }
    const syncMs = await until("full sync of every agent", () => agents.every((a) => a.synced), 300_000);
    const syncCpu = cpuSeconds(pid) - cpu0;
    const synced = rss(pid);
    const fullBytes = median(agents.map((a) => a.bytes));
    const workloadsPerAgent = median(
      agents.map((a) => a.responses.find((r) => r.typeUrl === typeUrlOf("Workload"))?.resources.length ?? 0),
    );
    log(
      `full sync of ${s.agents} agents in ${Math.round(syncMs)} ms; ${Math.round(fullBytes / 1024)} KiB and ${workloadsPerAgent} workloads per agent`,
    );

    // One real agent (decode + validate + snapshot) on the same controller, for the agent's side.
    const updater = new StateUpdater("node0", { trustDomain: "cluster.local", rootNamespace: "weft-system" });
    const real = new XdsClient({
      endpoint: { target, tokenFile: join(state, "tokens", "node0.token"), roots: () => [caPem] },
      node: "node0",
      agentVersion: "bench",
      updater,
      log: silentLogger(),
    });
    const realStart = performance.now();
    real.start();
    await updater.state.when((st) => st.synced, 120_000);
    const realMs = performance.now() - realStart;
    real.stop();

    // One change at a time: relabel a pod in a mesh namespace (every agent needs it).
    const latencies: number[] = [];
    const deltaBytes: number[] = [];
    for (let k = 0; k < s.changes; k++) {
      const i = 2 * k * 10; // ns0: enrolled
      const uid = `uid-${i}`;
      const seen = new Map<string, number>();
      const before = agents.map((a) => a.bytes);
      for (const a of agents) {
        a.onResponse = (r) => {
          if (r.typeUrl === typeUrlOf("Workload") && r.resources.some((x) => x.name === uid) && !seen.has(a.node))
            seen.set(a.node, performance.now());
        };
      }
      const start = performance.now();
      writeFileSync(`${gen.podFile(i)}.tmp`, JSON.stringify(gen.pod(i, k + 1)));
      renameSync(`${gen.podFile(i)}.tmp`, gen.podFile(i)); // atomic, as the cluster harness writes
      await until("the change at every agent", () => seen.size === agents.length, 30_000);
      latencies.push(Math.max(...seen.values()) - start);
      deltaBytes.push(median(agents.map((a, j) => a.bytes - (before[j] as number))));
      await new Promise((r) => setTimeout(r, 200)); // let ACKs settle before the next change
    }
    const after = rss(pid);
    const totalCpu = cpuSeconds(pid) - cpu0;
    const status = JSON.parse((await adminGet(join(state, "controller.sock"), "/status")).body) as {
      xds: { stats: { lastBuildMs: number } };
    };
    const changeMs = median(latencies);
    const delta = median(deltaBytes);
    emitBenchOutput({
      bench: "push-scale",
      title: "Control plane: push at scale",
      command: `node dist/bench/push-scale.js${s.quick ? " --quick" : ""} --pods ${s.pods} --services ${s.services} --policies ${s.policies} --agents ${s.agents}`,
      rows: [
        { table: "sync", what: "controller start (load and translate the store)", ms: Math.round(loadMs) },
        {
          table: "sync",
          what: `full sync, ${s.agents} agents (first stream open → every type answered)`,
          ms: Math.round(syncMs),
          "controller CPU s": Math.round(syncCpu * 100) / 100,
        },
        { table: "sync", what: "one real agent: full state decoded, validated, published", ms: Math.round(realMs) },
        {
          table: "change",
          what: "one pod relabelled → all agents (median of changes, from the file write)",
          ms: Math.round(changeMs),
          "worst ms": Math.round(Math.max(...latencies)),
        },
        { table: "change", what: "controller: encode state + per-node selection (last push)", ms: status.xds.stats.lastBuildMs },
        { table: "bytes", what: "per agent, full sync", KiB: Math.round(fullBytes / 1024) },
        { table: "bytes", what: "per agent, one change (delta)", KiB: Math.round((delta / 1024) * 100) / 100 },
        { table: "bytes", what: "per agent, one change if pushed state-of-the-world (baseline)", KiB: Math.round(fullBytes / 1024) },
        { table: "memory", what: "controller RSS idle (store loaded, no agent)", MiB: idle.rssMiB },
        { table: "memory", what: `controller RSS with ${s.agents} agents in sync`, MiB: synced.rssMiB },
        { table: "memory", what: "controller RSS after the changes / peak", MiB: after.rssMiB, "peak MiB": after.peakMiB },
      ],
      notes: [
        `${s.pods} pods (half in mesh namespaces) on ${s.agents} nodes, ${s.services} services with 3 endpoints each, ${s.policies} policies (60% AuthorizationPolicy, 10% PeerAuthentication, 20% VirtualService, 10% DestinationRule).`,
        `Each agent receives ${workloadsPerAgent} workloads (its own pods, enrolled pods, service endpoints). Agents are raw gRPC streams in one process that ACK at once; the "real agent" row is the agent's own code.`,
        `Delta vs state-of-the-world for one change: ${Math.round(fullBytes / Math.max(1, delta))}× fewer bytes per agent. One change reaches all agents in ${Math.round(changeMs)} ms vs ${Math.round(syncMs)} ms for a full sync (${Math.round((syncMs / changeMs) * 10) / 10}×). Latency includes the file-watch debounce (20 ms) and the controller's push debounce (100 ms).`,
        `Controller CPU over the whole run: ${Math.round(totalCpu * 100) / 100} s.`,
      ],
      targets: [
        {
          what: "one change reaches every agent",
          target: "< 1 s",
          measured: `${Math.round(Math.max(...latencies))} ms (worst)`,
          met: Math.max(...latencies) < 1000,
        },
      ],
    });
  } finally {
    for (const a of agents) a.close();
    controller?.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    log(`failed: ${errorMessage(e)}`);
    process.exit(1);
  },
);
