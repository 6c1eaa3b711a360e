/**
 * Protocol selection at the destination, as the source does it: a Service port's declared
 * protocol decides; a port that declares none is sniffed, so policies with HTTP attributes are
 * checked per request there too instead of failing closed for every connection.
 */
import { describe, expect, it } from "vitest";
import { checkInbound, inboundProtocol } from "../../agent/proxy/inbound-policy.js";
import { MeshView } from "../../agent/state/view.js";
import type { AppProtocol, AuthorizationPolicy, Service } from "../../controller/api/model.js";
import { service, snapshot, workload } from "../helpers/mesh-fixture.js";

const N1 = "10.250.0.11";
const N2 = "10.250.0.12";
const client = workload({ name: "client", ns: "shop", ip: "10.244.1.2", node: "node1", nodeAddress: N1 });
const api = workload({ name: "api", ns: "shop", ip: "10.244.2.2", node: "node2", nodeAddress: N2, labels: { app: "api" } });

function svc(targetPort: number, appProtocol: AppProtocol): Service {
  const s = service(`api-${targetPort}`, "shop", `10.96.0.${targetPort % 200}`, 80, targetPort, [api]);
  return { ...s, ports: [{ port: 80, targetPort, appProtocol }] };
}

/** Only GET /public from anyone: a rule only an HTTP-aware check can allow. */
const getPublic: AuthorizationPolicy = {
  key: "shop/get-public",
  name: "get-public",
  namespace: "shop",
  scope: { kind: "workload", selector: { app: "api" } },
  action: "ALLOW",
  rules: [{ from: [], to: [{ methods: ["GET"], paths: ["/public"] }], when: [] }],
};

const services = [svc(8080, "http"), svc(8081, "auto"), svc(8082, "tcp")];
const view = (policies: AuthorizationPolicy[]) => new MeshView(snapshot("node2", [client, api], services, policies));
const inbound = (v: MeshView, port: number, extra: { traced?: boolean; httpCapable?: boolean } = {}) =>
  checkInbound(v, {
    sourceIdentity: client.identity,
    sourceIp: "10.244.1.2",
    target: { ip: "10.244.2.2", port },
    httpCapable: true,
    ...extra,
  });

describe("destination protocol selection", () => {
  it("follows the Service port: declared HTTP, undeclared (sniffed), TCP, or no Service at all", () => {
    const v = view([]);
    expect([8080, 8081, 8082, 9999].map((p) => inboundProtocol(v, api, p))).toEqual(["http", "sniff", "tcp", "tcp"]);
  });

  it("checks HTTP-attribute rules per request on an undeclared port, marking the bytes as sniffed", () => {
    const v = view([getPublic]);
    expect(inbound(v, 8081)).toMatchObject({ ok: true, http: { authz: true, sniffed: true } });
    expect(inbound(v, 8080)).toMatchObject({ ok: true, http: { authz: true, sniffed: false } });
  });

  it("keeps failing closed where no HTTP server can look at the requests", () => {
    const v = view([getPublic]);
    // Declared TCP, no Service, or a caller that cannot run the HTTP server.
    expect(inbound(v, 8082)).toMatchObject({ ok: false, status: 403 });
    expect(inbound(v, 9999)).toMatchObject({ ok: false, status: 403 });
    expect(inbound(v, 8081, { httpCapable: false })).toMatchObject({ ok: false, status: 403 });
  });

  it("leaves an undeclared port on the L4 splice when nothing needs the requests", () => {
    const v = view([]);
    expect(inbound(v, 8081)).toMatchObject({ ok: true });
    expect(inbound(v, 8081)).not.toHaveProperty("http");
    // Tracing needs the requests (server spans).
    expect(inbound(v, 8081, { traced: true })).toMatchObject({ ok: true, http: { trace: true, sniffed: true, authz: false } });
  });
});
