/**
 * Inbound capture and trusted attribution (issue 18) and kubelet probes under STRICT (issue 14
 * item 3), on a 2-node netns cluster with the real agents: plaintext to enrolled pods is captured
 * to 15006 and authorized there (portLevelMtls honoured), the destination pod sees the client
 * pod's own address (so a NetworkPolicy-like nftables rule on its veth still works), a forged
 * `forwarded` header is not believed, an independent HBONE client (node:http2, no weft code, no
 * SNI) reaches a pod at <pod IP>:15008, and the node's own plaintext reaches a STRICT pod from
 * 169.254.7.127 while a non-mesh pod's does not.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { stringify } from "yaml";
import { inspect } from "../../agent/redirect/inspect.js";
import { PASSTHROUGH_MARK, PROXY_MARK } from "../../controller/api/constants.js";
import { run } from "../../native/exec.js";
import { netnsPath } from "../../native/netns.js";
import { requireState } from "../../scripts/cluster/cluster.js";
import { controllerDir } from "../../scripts/cluster/mesh.js";
import { writeFileAtomic } from "../../scripts/cluster/state.js";
import { storeFileName, storePath } from "../../scripts/cluster/store.js";
import { Topology } from "../../scripts/cluster/topology.js";
import { forceDown, PROBE, runProbe } from "../helpers/cluster.js";
import { admin, counterSum, meshUp, metrics, podIp, probe, probeServer, seenBy } from "../helpers/mesh.js";
import { describePrivileged } from "../helpers/privileged.js";
import { pinDirOf } from "../helpers/redirect-cluster.js";
import { waitFor } from "../helpers/wait.js";
import { testClusterName, weftOk } from "../helpers/weft.js";

const C = testClusterName("ic");
const MARKED_DIAL = join(import.meta.dirname, "..", "helpers", "marked-dial.mjs");
const HBONE_CLIENT = join(import.meta.dirname, "..", "helpers", "hbone-client.mjs");
/** How long a check that expects an answer waits for one (idle), on a busy machine. */
const READY_MS = 15_000;
const ID = (sa: string) => `spiffe://cluster.local/ns/app/sa/${sa}`;

const policy = (name: string, spec: string) => `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: ${name}
  namespace: app
spec:
  selector:
    matchLabels:
      app: server
${spec}`;
const DENY_ALL = policy("deny-all", "  action: DENY\n  rules:\n  - {}\n");
const PORT_STRICT = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: port-strict
  namespace: app
spec:
  selector:
    matchLabels:
      app: server
  mtls:
    mode: PERMISSIVE
  portLevelMtls:
    9090:
      mode: STRICT
`;
const NS_STRICT = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: strict
  namespace: app
spec:
  mtls:
    mode: STRICT
`;

describePrivileged("inbound capture and trusted attribution (2 nodes, real agents)", () => {
  const dir = mkdtempSync(join(tmpdir(), "weft-inbound-"));
  const file = (name: string, text: string) => {
    const p = join(dir, `${name}.yaml`);
    writeFileSync(p, text);
    return p;
  };
  const ip = (ns: string, name: string) => podIp(C, ns, name);
  const pod = (ns: string, name: string) => {
    const p = requireState(C).pods.find((x) => x.namespace === ns && x.name === name);
    if (!p) throw new Error(`no pod ${ns}/${name}`);
    return p;
  };
  /**
   * Whether a connection gets an answer. A refusal shows quickly (a reset) or as `idleMs` of
   * silence (a drop), so 2 s suits checks that expect none; a check that expects an answer passes
   * READY_MS, because a busy machine is slow, not broken.
   */
  const reaches = async (from: string, host: string, port: number, idleMs = 2000) => {
    const r = await probe<{ ok: boolean; reply?: string }>(C, from, ["connect", host, String(port), "x", String(idleMs)]);
    return r.ok && (r.reply ?? "").length > 0;
  };
  /**
   * Runs a node script in a node's netns only (not the agent's cgroup, whose sockets carry the
   * proxy mark) and returns the last JSON line it printed.
   */
  const inNodeNetns = (node: string, script: string, args: string[]) =>
    new Promise<{ ok: boolean; reply?: string; code?: string }>((resolve, reject) => {
      const c = spawn("nsenter", [`--net=${netnsPath(node)}`, "--", process.execPath, script, ...args]);
      let out = "";
      c.stdout.on("data", (d) => {
        out += d;
      });
      c.on("error", reject);
      c.on("exit", () => resolve(JSON.parse(out.trim().split("\n").pop() ?? "{}")));
    });
  /** Applies YAML for the duration of fn, then deletes it and waits for `settled`. */
  const withYaml = async (name: string, text: string, fn: () => Promise<void>, settled: () => Promise<boolean>) => {
    const f = file(name, text);
    await weftOk(["cluster", "apply", "--name", C, "-f", f]);
    try {
      await fn();
    } finally {
      await weftOk(["cluster", "delete", "--name", C, "-f", f]);
    }
    await waitFor(`${name} gone`, settled, 10_000, 100);
  };
  /** A mesh certificate signed by the cluster's CA (or a foreign one), written for the HBONE client. */
  const certFor = async (identity: string, foreign = false): Promise<{ cert: string; key: string }> => {
    const tag = identity.replace(/\W+/g, "_") + (foreign ? "_foreign" : "");
    const [key, csr, cert, ext] = ["key", "csr", "pem", "ext"].map((x) => join(dir, `${tag}.${x}`)) as [string, string, string, string];
    const sh = (args: string[]) => run("openssl", args);
    await sh(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key]);
    await sh(["req", "-new", "-key", key, "-subj", "/O=interop", "-out", csr]);
    writeFileSync(
      ext,
      `subjectAltName=critical,URI:${identity}\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=critical,CA:FALSE\n`,
    );
    const ca = join(controllerDir(C), "ca");
    let [caCert, caKey] = [join(ca, "root-cert.pem"), join(ca, "root-key.pem")];
    if (foreign) {
      [caCert, caKey] = [join(dir, "foreign.pem"), join(dir, "foreign.key")];
      await sh(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", caKey]);
      await sh([
        "req",
        "-x509",
        "-new",
        "-key",
        caKey,
        "-subj",
        "/O=foreign",
        "-days",
        "1",
        "-out",
        caCert,
        "-addext",
        "basicConstraints=critical,CA:TRUE",
      ]);
    }
    await sh(["x509", "-req", "-in", csr, "-CA", caCert, "-CAkey", caKey, "-CAcreateserial", "-days", "1", "-extfile", ext, "-out", cert]);
    return { cert, key };
  };
  type HboneResult = { status?: number; reply?: string; serverId?: string; error?: string };
  const hbone = (from: string, host: string, authority: string, who: { cert: string; key: string }, expected: string, forwarded?: string) =>
    runProbe<HboneResult>(C, from, HBONE_CLIENT, [
      host,
      authority,
      who.cert,
      who.key,
      join(controllerDir(C), "ca", "root-cert.pem"),
      expected,
      "hello",
      ...(forwarded ? [forwarded] : []),
    ]);

  beforeAll(async () => {
    await meshUp(
      C,
      [
        { ns: "app", name: "client", node: 1 },
        { ns: "app", name: "local", node: 1, labels: { app: "local" } },
        { ns: "legacy", name: "outsider", node: 1 },
        { ns: "app", name: "server", node: 2, labels: { app: "server" } },
        { ns: "app", name: "other", node: 2, labels: { app: "other" } },
        { ns: "legacy", name: "outsider2", node: 2 },
      ],
      ["app"],
    );
    await probeServer(C, "app/server", "whoami-server", 8080);
    await probeServer(C, "app/server", "whoami-server", 9090);
    await probeServer(C, "app/local", "whoami-server", 8080);
    await probeServer(C, "app/local", "whoami-server", 9090);
    await waitFor("server reachable through the mesh", () => reaches("app/client", ip("app", "server"), 8080), 15_000, 100);
  });

  afterAll(async () => {
    await forceDown(C);
    rmSync(dir, { recursive: true, force: true });
  });

  it("the destination pod sees the client pod's own address, across nodes, on one node, and for plaintext", async () => {
    expect(await seenBy(C, "app/client", ip("app", "server"), 8080)).toBe(ip("app", "client"));
    expect(await seenBy(C, "app/client", ip("app", "local"), 8080)).toBe(ip("app", "client"));
    // A non-mesh pod's plaintext is captured to 15006 (PERMISSIVE), delivered from its own address.
    expect(await seenBy(C, "legacy/outsider2", ip("app", "server"), 8080)).toBe(ip("legacy", "outsider2"));
    expect(await seenBy(C, "legacy/outsider", ip("app", "server"), 8080)).toBe(ip("legacy", "outsider"));
    const m = await metrics(C, 2);
    expect(
      counterSum(m, "istio_tcp_connections_opened_total", { reporter: "destination", connection_security_policy: "none" }),
    ).toBeGreaterThanOrEqual(2);
  });

  it("a NetworkPolicy-like nftables rule on the destination pod's veth keeps working for meshed traffic", async () => {
    const node = new Topology(requireState(C).spec).nodeName(2);
    const veth = pod("app", "server").hostVeth;
    const table = "weft_test_netpol";
    // As a CNI would install it: only app/client may reach port 8080 of app/server.
    const rule = `oifname "${veth}" tcp dport 8080 ip saddr != ${ip("app", "client")} counter drop`;
    const nft = (script: string) => run("nsenter", [`--net=${netnsPath(node)}`, "--", "nft", "-f", "-"], { input: script });
    await nft(
      `table inet ${table} {\n chain np_forward { type filter hook forward priority 0; ${rule}; }\n chain np_output { type filter hook output priority 0; ${rule}; }\n}\n`,
    );
    try {
      expect(await seenBy(C, "app/client", ip("app", "server"), 8080)).toBe(ip("app", "client"));
      expect(await reaches("app/other", ip("app", "server"), 8080)).toBe(false);
      expect(await reaches("app/other", ip("app", "server"), 9090, READY_MS)).toBe(true);
    } finally {
      await nft(`table inet ${table}\ndelete table inet ${table}\n`);
    }
  });

  it("PERMISSIVE with a DENY-all policy: a non-mesh pod's plaintext is refused and counted", async () => {
    const refused = async () =>
      counterSum(await metrics(C, 2), "istio_tcp_connections_closed_total", {
        reporter: "destination",
        connection_security_policy: "none",
        response_flags: "DENY",
      });
    const before = await refused();
    await withYaml(
      "deny-all",
      DENY_ALL,
      async () => {
        await waitFor("plaintext refused", async () => !(await reaches("legacy/outsider2", ip("app", "server"), 8080)), 10_000, 100);
        expect(await reaches("legacy/outsider", ip("app", "server"), 8080)).toBe(false);
        expect(await refused()).toBeGreaterThanOrEqual(before + 2);
      },
      () => reaches("legacy/outsider2", ip("app", "server"), 8080),
    );
  });

  it("port-level STRICT refuses plaintext on that port only", async () => {
    await withYaml(
      "port-strict",
      PORT_STRICT,
      async () => {
        await waitFor(
          "plaintext refused on 9090",
          async () => !(await reaches("legacy/outsider2", ip("app", "server"), 9090)),
          10_000,
          100,
        );
        expect(await reaches("legacy/outsider2", ip("app", "server"), 8080, READY_MS)).toBe(true);
        expect(await reaches("app/client", ip("app", "server"), 9090, READY_MS)).toBe(true);
      },
      () => reaches("legacy/outsider2", ip("app", "server"), 9090),
    );
  });

  it("a live plaintext connection is reset when STRICT arrives", async () => {
    const live = probe<{ rounds: number; code?: string }>(C, "legacy/outsider2", ["hold", ip("app", "server"), "8080", "30000"]);
    await waitFor(
      "the plaintext connection tracked on node 2",
      async () => {
        const { connections } = await admin<{ connections: { mode: string; srcWorkload?: string }[] }>(C, 2, "/connections");
        return connections.some((c) => c.mode === "plaintext" && c.srcWorkload === "legacy/outsider2");
      },
      10_000,
    );
    await withYaml(
      "strict",
      NS_STRICT,
      async () => {
        const r = await live;
        expect(r.rounds).toBeGreaterThan(0);
        expect(r.code).toBe("ECONNRESET");
      },
      () => reaches("legacy/outsider2", ip("app", "server"), 8080),
    );
  });

  // A policy re-check sees only tracked connections; one whose pod was still being dialled when the
  // DENY landed was decided with the old view. The pod's SYNs are dropped until the DENY is in
  // force, so the dial is in flight across the change; when a retransmitted SYN gets through, the
  // proxy must decide again and refuse. A run where the dial timed out first (5 s: a slow push)
  // exercised nothing and is repeated.
  for (const [where, target, node, tag] of [
    ["on the destination node (HBONE)", "server", 2, "server"],
    ["on one node (same-node delivery)", "local", 1, "local"],
  ] as const) {
    it(`a DENY that lands while the pod is being dialled refuses the connection ${where}`, async () => {
      const codes = async (code: string) => counterSum(await metrics(C, node), "weft_connection_errors_total", { code });
      const nft = (script: string) =>
        run("nsenter", [`--net=${netnsPath(pod("app", target).netns)}`, "--", "nft", "-f", "-"], { input: script });
      const table = "weft_test_syn";
      const dropped = async () => {
        const out = await run("nsenter", [
          `--net=${netnsPath(pod("app", target).netns)}`,
          "--",
          "nft",
          "list",
          "chain",
          "inet",
          table,
          "in",
        ]);
        return Number(/packets (\d+)/.exec(out.stdout)?.[1] ?? 0);
      };
      const deny = file(`deny-${tag}`, policy(`deny-${tag}`, "  action: DENY\n  rules:\n  - {}\n").replace("app: server", `app: ${tag}`));
      let exercised = false;
      for (let attempt = 0; attempt < 3 && !exercised; attempt++) {
        await nft(
          `table inet ${table} {\n chain in { type filter hook input priority -10; tcp dport 8080 tcp flags & (syn | ack) == syn counter drop; }\n}\n`,
        );
        let held: Promise<{ rounds: number; code?: string }> | undefined;
        try {
          const unreachable = await codes("WEFT_UPSTREAM_UNREACHABLE");
          held = probe<{ rounds: number; code?: string }>(C, "app/client", ["hold", ip("app", target), "8080", "20000"]);
          await waitFor("the proxy's dial of the pod held up", async () => (await dropped()) > 0, 10_000, 50);
          const deniedBefore = await codes("WEFT_AUTHZ_DENIED");
          await weftOk(["cluster", "apply", "--name", C, "-f", deny]);
          // In force on that node: a fresh connection to an open port is refused and counted.
          await waitFor(
            "the DENY in force",
            async () => {
              await reaches("app/client", ip("app", target), 9090);
              return (await codes("WEFT_AUTHZ_DENIED")) > deniedBefore;
            },
            10_000,
            100,
          );
          const deniedInForce = await codes("WEFT_AUTHZ_DENIED");
          await nft(`table inet ${table}\ndelete table inet ${table}\n`);
          const r = await held;
          // Never carried: reset before any echo came back, whichever way it was refused.
          expect(r.code).toBe("ECONNRESET");
          expect(r.rounds).toBe(0);
          exercised = (await codes("WEFT_UPSTREAM_UNREACHABLE")) === unreachable;
          if (exercised) expect(await codes("WEFT_AUTHZ_DENIED")).toBeGreaterThan(deniedInForce);
        } finally {
          await nft(`table inet ${table}\ndelete table inet ${table}\n`).catch(() => undefined);
          await weftOk(["cluster", "delete", "--name", C, "-f", deny]);
          await held?.catch(() => undefined);
        }
        await waitFor(`deny-${tag} gone`, () => reaches("app/client", ip("app", target), 9090), 10_000, 100);
      }
      expect(exercised).toBe(true);
    }, 120_000);
  }

  it("an independent HBONE client (no weft SNI) reaches the pod at <pod IP>:15008; a wrong identity is refused", async () => {
    const client = await certFor(ID("client"));
    const foreign = await certFor(ID("client"), true);
    const server = ip("app", "server");
    const ok = await hbone("legacy/outsider", server, `${server}:8080`, client, ID("server"));
    expect(ok).toMatchObject({ status: 200, serverId: ID("server") });
    expect(ok.reply).toContain("hello");
    // The identity presented is the dialled pod's: a CONNECT to another pod through it is refused.
    expect(await hbone("legacy/outsider", server, `${ip("app", "other")}:8080`, client, ID("server"))).toMatchObject({ status: 421 });
    // The client expecting another identity refuses the server; a certificate of another CA is refused.
    expect((await hbone("legacy/outsider", server, `${server}:8080`, client, ID("other"))).error).toBeTruthy();
    const bad = await hbone("legacy/outsider", server, `${server}:8080`, foreign, ID("server"));
    expect(bad.status === 200).toBe(false);
  });

  it("a forged forwarded header is not believed, and one that names no IP is refused", async () => {
    const client = await certFor(ID("client"));
    const server = ip("app", "server");
    const allowClientIp = policy("only-client-ip", `  rules:\n  - from:\n    - source:\n        ipBlocks: ["${ip("app", "client")}/32"]\n`);
    await withYaml(
      "only-client-ip",
      allowClientIp,
      async () => {
        await waitFor("policy applied", async () => !(await reaches("app/other", server, 8080)), 10_000, 100);
        // The mesh client, vouched for by its own node's proxy, is still attributed correctly.
        expect(await reaches("app/client", server, 8080, READY_MS)).toBe(true);
        // Claiming app/client's address from elsewhere (not its node) does not make it so.
        const forged = await hbone("legacy/outsider", server, `${server}:8080`, client, ID("server"), `for=${ip("app", "client")}`);
        expect(forged).toMatchObject({ status: 403 });
        const junk = await hbone("legacy/outsider", server, `${server}:8080`, client, ID("server"), "for=evil.example");
        expect(junk).toMatchObject({ status: 400 });
      },
      () => reaches("app/other", server, 8080),
    );
  });

  it("two pods claiming one IP fail closed: neither is trusted with the address", async () => {
    const state = requireState(C);
    const server = pod("app", "server");
    const topo = new Topology(state.spec);
    // A stale record for the same address (as a pod being replaced leaves behind), written to the
    // file store the controller watches, as the API server would hold it.
    const twin = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "server-twin", namespace: "app", uid: "weft-test-twin-uid", labels: { app: "twin" } },
      spec: { nodeName: topo.nodeName(2), serviceAccountName: "twin", containers: [{ name: "app" }] },
      status: {
        phase: "Running",
        podIP: server.ip,
        podIPs: [{ ip: server.ip }],
        hostIP: topo.nodeIp(2),
        conditions: [{ type: "Ready", status: "True" }],
      },
    };
    const path = storePath(state.storeDir, storeFileName(twin));
    writeFileAtomic(path, stringify(twin));
    try {
      await waitFor("the clashing address refused", async () => !(await reaches("app/client", server.ip, 8080)), 10_000, 100);
      expect(await reaches("app/client", server.ip, 8080)).toBe(false);
    } finally {
      rmSync(path, { force: true });
    }
    await waitFor("the address trusted again", () => reaches("app/client", server.ip, 8080), 10_000, 100);
  });

  it("a passthrough dial never passes STRICT: the guard drops the passthrough mark and admits only the proxy's", async () => {
    const local = pod("app", "local");
    const node = new Topology(requireState(C).spec).nodeName(1);
    // The proxy passes a call through when its view does not hold the destination as a mesh
    // pod (a view that lags an enrolment, say): on one node only the TCX guard stands between
    // that plain dial and a STRICT pod. Dialled from the node's netns, outside the agent's cgroup
    // (whose sockets the sock_create hook marks), exactly as dial.ts marks a passthrough socket.
    const markedDial = (mark: number, ms = 1500) => inNodeNetns(node, MARKED_DIAL, [local.ip, "8080", String(mark), String(ms)]);
    const drops = () => inspect(pinDirOf(C, 1)).stats.guard_drop ?? 0;
    await withYaml(
      "strict-passthrough",
      NS_STRICT,
      async () => {
        await waitFor("plaintext refused", async () => !(await reaches("legacy/outsider", local.ip, 8080)), 10_000, 100);
        const before = drops();
        const passthrough = await markedDial(PASSTHROUGH_MARK);
        expect(passthrough).toMatchObject({ ok: false, code: "ETIMEDOUT" });
        expect(drops()).toBeGreaterThan(before);
        // Positive control: the same dial with the proxy's mark is admitted, so the drop was the mark's doing.
        const proxied = await markedDial(PROXY_MARK, READY_MS);
        expect(proxied.ok, JSON.stringify(proxied)).toBe(true);
      },
      () => reaches("legacy/outsider", local.ip, 8080),
    );
  });

  it("under STRICT the node's own (kubelet) plaintext reaches the pod from 169.254.7.127; a non-mesh pod's does not", async () => {
    const server = pod("app", "server");
    const node = new Topology(requireState(C).spec).nodeName(2);
    // A real pod has a default route back to its node; the test bed's pods only route the cluster.
    await run("ip", ["-n", server.netns, "route", "replace", "169.254.7.127/32", "via", `10.244.2.1`, "dev", "eth0"]);
    // In the node's netns only: the kubelet's own plaintext, not the proxy's.
    const kubelet = () => inNodeNetns(node, PROBE, ["connect", server.ip, "8080", "probe", String(READY_MS)]);
    await withYaml(
      "strict",
      NS_STRICT,
      async () => {
        await waitFor("plaintext refused", async () => !(await reaches("legacy/outsider2", server.ip, 8080)), 10_000, 100);
        const r = await kubelet();
        expect(r.ok).toBe(true);
        expect(r.reply?.split("\n")[0]).toBe("169.254.7.127");
        expect(await reaches("legacy/outsider", server.ip, 8080)).toBe(false);
        expect(await reaches("app/client", server.ip, 8080, READY_MS)).toBe(true);
      },
      () => reaches("legacy/outsider2", server.ip, 8080),
    );
  });
});
