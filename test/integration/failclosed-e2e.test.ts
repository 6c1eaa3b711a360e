/**
 * Fail-closed policy with real connections (issue 13 items 1 and 3, issue 11 item 6), on a
 * 2-node netns cluster: a misspelt ALLOW stops allowing instead of allowing everything, a DENY
 * with a bad action denies its whole scope, a PeerAuthentication with a bad mode is STRICT, every
 * case shows its field path in `weft policies`, and a refused VirtualService leaves the mesh
 * applying later changes.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { forceDown } from "../helpers/cluster.js";
import { meshUp, podIp, probe, probeServer, vip } from "../helpers/mesh.js";
import { describePrivileged } from "../helpers/privileged.js";
import { waitFor } from "../helpers/wait.js";
import { testClusterName, weftOk } from "../helpers/weft.js";

const C = testClusterName("fc");
const at = (n: number) => ["--node", `${C}-node${n}`];

const ALLOW_TYPO = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-typo
  namespace: app
spec:
  selector:
    matchLabels:
      app: server
  rules:
  - from:
    - source:
        namespace: ["legacy"]
`;
const DENY_SPACE = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-space
  namespace: app
spec:
  selector:
    matchLabels:
      app: server
  action: "DENY "
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/app/sa/nobody"]
`;
const PA_SPACE = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: permissive-space
  namespace: app
spec:
  mtls:
    mode: "PERMISSIVE "
`;
const BAD_VS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: bad-regex
  namespace: app
spec:
  hosts: ["server"]
  http:
  - match:
    - uri:
        regex: "(?<=/api)/v1"
    route:
    - destination:
        host: server
`;
const DENY_ALL = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-all
  namespace: app
spec:
  selector:
    matchLabels:
      app: server
  action: DENY
  rules:
  - {}
`;

describePrivileged("fail-closed policy with real connections (2 nodes)", () => {
  const dir = mkdtempSync(join(tmpdir(), "weft-failclosed-"));
  const file = (name: string, text: string) => {
    const p = join(dir, `${name}.yaml`);
    writeFileSync(p, text);
    return p;
  };
  /** idleMs: short where a refusal is expected; long where an answer is, as a busy machine is slow. */
  const connects = async (from: string, host: string, port: string, idleMs = 1500) =>
    (await probe<{ ok: boolean }>(C, from, ["connect", host, port, "x", String(idleMs)])).ok;
  const policyDetail = async (name: string) => {
    const rows = JSON.parse(await weftOk(["policies", ...at(2), "-o", "json"])) as { name: string; detail: string }[];
    return rows.find((r) => r.name === name)?.detail ?? "";
  };

  beforeAll(async () => {
    await meshUp(
      C,
      [
        { ns: "app", name: "client", node: 1 },
        { ns: "app", name: "server", node: 2, labels: { app: "server" } },
        { ns: "legacy", name: "outsider", node: 1 },
      ],
      ["app"],
      [{ ns: "app", name: "server", port: 80, targetPort: 8080, selector: { app: "server" } }],
    );
    await probeServer(C, "app/server", "whoami-server", 8080);
    await waitFor("server reachable through the mesh", () => connects("app/client", vip(C, "app", "server"), "80"), 10_000, 100);
  });

  afterAll(async () => {
    await forceDown(C);
    rmSync(dir, { recursive: true, force: true });
  });

  it("a misspelt ALLOW (source.namespace) allows nothing instead of everything, and says why", async () => {
    const f = file("allow", ALLOW_TYPO);
    await weftOk(["cluster", "apply", "--name", C, "-f", f]);
    try {
      await waitFor("client refused", async () => !(await connects("app/client", vip(C, "app", "server"), "80")), 5000, 50);
      expect(await policyDetail("allow-typo")).toMatch(
        /^ALLOW, 0 rules \(allows nothing\); INVALID, enforced fail-closed: spec\.rules\[0\]\.from\[0\]\.source\.namespace: unknown field \(did you mean namespaces\?\)/,
      );
    } finally {
      await weftOk(["cluster", "delete", "--name", C, "-f", f]);
    }
    await waitFor("client allowed again", () => connects("app/client", vip(C, "app", "server"), "80"), 15_000, 50);
  });

  it('a DENY with action "DENY " denies its whole scope', async () => {
    const f = file("deny", DENY_SPACE);
    await weftOk(["cluster", "apply", "--name", C, "-f", f]);
    try {
      await waitFor("client refused", async () => !(await connects("app/client", vip(C, "app", "server"), "80")), 5000, 50);
      expect(await policyDetail("deny-space")).toMatch(/^DENY, 1 rule; INVALID, enforced fail-closed: spec\.action: 'DENY ' is not ALLOW/);
    } finally {
      await weftOk(["cluster", "delete", "--name", C, "-f", f]);
    }
    await waitFor("client allowed again", () => connects("app/client", vip(C, "app", "server"), "80"), 15_000, 50);
  });

  it('a PeerAuthentication with mode "PERMISSIVE " is STRICT: plaintext from outside the mesh is refused', async () => {
    const server = podIp(C, "app", "server");
    expect(await connects("legacy/outsider", server, "8080", 15_000)).toBe(true);
    const f = file("pa", PA_SPACE);
    await weftOk(["cluster", "apply", "--name", C, "-f", f]);
    try {
      await waitFor("plaintext refused", async () => !(await connects("legacy/outsider", server, "8080")), 5000, 50);
      expect(await connects("app/client", vip(C, "app", "server"), "80", 15_000)).toBe(true);
      expect(await policyDetail("permissive-space")).toMatch(
        /^mTLS STRICT; INVALID, enforced fail-closed: spec\.mtls\.mode: 'PERMISSIVE '/,
      );
    } finally {
      await weftOk(["cluster", "delete", "--name", C, "-f", f]);
    }
    await waitFor("plaintext allowed again", () => connects("legacy/outsider", server, "8080"), 15_000, 50);
  });

  it("a refused VirtualService is listed with its reason, and a DENY-all applied afterwards still takes effect", async () => {
    const vs = file("vs", BAD_VS);
    const deny = file("deny-all", DENY_ALL);
    await weftOk(["cluster", "apply", "--name", C, "-f", vs]);
    try {
      await waitFor(
        "the refusal listed",
        async () =>
          /^REFUSED \(not applied\): invalid: spec\.http\[0\]\.match\[0\]\.uri\.regex: .*RE2/.test(await policyDetail("bad-regex")),
        5000,
        100,
      );
      expect(await connects("app/client", vip(C, "app", "server"), "80", 15_000)).toBe(true);
      await weftOk(["cluster", "apply", "--name", C, "-f", deny]);
      await waitFor("client refused", async () => !(await connects("app/client", vip(C, "app", "server"), "80")), 5000, 50);
    } finally {
      await weftOk(["cluster", "delete", "--name", C, "-f", deny]).catch(() => "");
      await weftOk(["cluster", "delete", "--name", C, "-f", vs]);
    }
    await waitFor("client allowed again", () => connects("app/client", vip(C, "app", "server"), "80"), 15_000, 50);
  });
});
