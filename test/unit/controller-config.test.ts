/** Controller and agent settings: defaults, and bad flags reported together, each naming the flag. */
import { describe, expect, it } from "vitest";
import { agentConfig } from "../../agent/config.js";
import { controllerConfig, parseListen } from "../../controller/config.js";

describe("controller settings", () => {
  it("has production defaults", () => {
    const c = controllerConfig({ store: "/run/weft/x/store" });
    expect(c).toMatchObject({
      source: { kind: "file", path: "/run/weft/x/store" },
      listenHost: "0.0.0.0",
      listenPort: 15012,
      stateDir: "/var/lib/weft/controller",
      translate: { trustDomain: "cluster.local", rootNamespace: "weft-system", clusterDomain: "cluster.local" },
      debounceMs: 100,
      maxDebounceMs: 1000,
      ca: { kind: "state-dir" },
      certTtlMs: 24 * 3600_000,
      adminSocket: "/var/lib/weft/controller/controller.sock",
    });
  });

  it("reads the Kubernetes options", () => {
    const c = controllerConfig({
      kubeconfig: "/k",
      namespaceSelector: "mesh=on",
      caSecret: "weft-system/cacerts",
      agentServiceAccount: ["weft/agent"],
    });
    expect(c).toMatchObject({
      source: { kind: "kubernetes", connection: { kubeconfig: "/k" }, namespaceSelector: "mesh=on" },
      ca: { kind: "secret", namespace: "weft-system", name: "cacerts" },
      agentServiceAccounts: ["weft/agent"],
      tokenAudiences: ["weft"],
    });
  });

  it("lists every problem at once, naming each flag", () => {
    let message = "";
    try {
      controllerConfig({
        store: "s",
        kubernetes: true,
        listen: "nowhere",
        trustDomain: "Bad Domain",
        certTtl: "forever",
        caSecret: "nons",
        logLevel: "loud",
      });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message.split("\n")).toEqual([
      "invalid controller settings:",
      "  --store and --kubernetes/--kubeconfig are exclusive: read the file store or the API server, not both",
      "  --listen 'nowhere': expected <ip>:<port>, e.g. 10.250.0.1:15012",
      "  --trust-domain 'Bad Domain': expected lower-case letters, digits, '.' and '-'",
      "  --ca-secret 'nons': expected <namespace>/<name>",
      "  --cert-ttl 'forever': expected a duration such as 100ms, 30s, 24h",
      "  --log-level 'loud': use trace, debug, info, warn or error",
    ]);
  });

  it("needs a source", () => {
    expect(() => controllerConfig({})).toThrow(/no source: pass --store <dir>.*or --kubernetes/);
  });

  it.each([
    ["10.250.0.1:15012", { host: "10.250.0.1", port: 15012 }],
    [":15012", { host: "0.0.0.0", port: 15012 }],
    ["[::1]:15012", { host: "::1", port: 15012 }],
  ])("parses --listen %s", (t, r) => expect(parseListen(t)).toEqual(r));
});

describe("agent settings", () => {
  it("connects to a controller with a token and a root", () => {
    const c = agentConfig({ node: "n1", controller: "10.250.0.1:15012", tokenFile: "/t", caFile: "/etc/hostname" }, {});
    expect(c).toMatchObject({
      node: "n1",
      source: { kind: "controller", target: "10.250.0.1:15012", tokenFile: "/t", caFile: "/etc/hostname" },
      adminAddress: { host: "127.0.0.1", port: 15000 },
      adminSocket: "/run/weft/agent-n1.sock",
      backoffMaxMs: 10_000,
    });
  });

  it("takes the node name from NODE_NAME", () => {
    expect(agentConfig({ localConfig: "/etc/hostname", adminSocket: "off", adminAddress: "off" }, { NODE_NAME: "worker-7" })).toMatchObject(
      { node: "worker-7", adminSocket: null, adminAddress: null },
    );
  });

  it("lists every problem at once", () => {
    let message = "";
    try {
      agentConfig(
        { node: "Node_1", controller: "10.250.0.1:15012", caFile: "/nonexistent.pem", adminAddress: "0.0.0.0:15000", reconnectMax: "1ms" },
        {},
      );
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message.split("\n")).toEqual([
      "invalid agent settings:",
      "  --node 'Node_1': not a valid Kubernetes node name",
      "  --token-file is required with --controller (the node's credential; the controller writes <state dir>/tokens/<node>.token)",
      "  --ca-file /nonexistent.pem does not exist",
      "  --admin-address '0.0.0.0:15000': the admin API binds to loopback only (127.0.0.1 or ::1)",
      "  --reconnect-max '1ms': must be at least 100 ms",
    ]);
  });

  it("needs exactly one source", () => {
    expect(() => agentConfig({ node: "n1" }, {})).toThrow(/no source: pass --controller/);
    expect(() =>
      agentConfig({ node: "n1", controller: "1.2.3.4:1", localConfig: "/x", tokenFile: "t", caFile: "/etc/hostname" }, {}),
    ).toThrow(/--controller and --local-config are exclusive/);
  });
});
