/**
 * The weft-l7-authz bench variant's configuration: the 100 AuthorizationPolicies it applies (read
 * by the controller's own translator and decided by the agent's own authorizer, so the row is
 * known to measure per-request checks that admit the bench's requests), and where its row goes.
 */

import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { authorize, authorizeStaged, type ConnectionFacts } from "../../agent/proxy/authz.js";
import { authzPoliciesYaml, authzPolicyName } from "../../bench/lib/authz-policies.js";
import { runs, tableSpecs } from "../../bench/lib/http-tables.js";
import { SMALL_PATH } from "../../bench/lib/upstream.js";
import { l7RequestCount } from "../../bench/variants/weft.js";
import type { KubeObject } from "../../controller/api/kube-types.js";
import { translate } from "../../controller/translate/index.js";
import { objects } from "../helpers/control-objects.js";

const NS = "bench-weft-l7-authz";
const yaml = authzPoliciesYaml(100, { namespace: NS, selector: { app: "server" }, allowPaths: [SMALL_PATH] });
const docs = parseAllDocuments(yaml).map((d) => d.toJSON() as KubeObject);
const model = translate(objects(docs));
const conn: ConnectionFacts = {
  sourceIdentity: `spiffe://cluster.local/ns/${NS}/sa/client`,
  sourceIp: "10.244.1.2",
  destinationIp: "10.244.2.2",
  destinationPort: 8080,
};
const request = (method: string, path: string, headers: Record<string, string> = {}) =>
  authorize(model.authorizationPolicies, { ...conn, request: { method, path, host: "10.96.0.10:8080", headers } });

describe("bench: the weft-l7-authz variant's AuthorizationPolicies", () => {
  it("are 100 valid policies on the server pod, half DENY, named in evaluation order", () => {
    expect(docs).toHaveLength(100);
    expect(model.diagnostics).toEqual([]);
    const ps = model.authorizationPolicies;
    expect(ps).toHaveLength(100);
    expect(ps.filter((p) => p.action === "DENY")).toHaveLength(50);
    expect(ps.filter((p) => p.action === "ALLOW")).toHaveLength(50);
    expect(ps.every((p) => p.scope.kind === "workload" && p.scope.selector?.app === "server")).toBe(true);
    expect(ps.map((p) => p.name)).toEqual(Array.from({ length: 100 }, (_, i) => authzPolicyName(i, 100)));
    expect(authzPolicyName(7, 100)).toBe("bench-authz-07");
  });

  it("need per-request checks, admit the bench's GET and refuse what no rule allows", () => {
    expect(authorizeStaged(model.authorizationPolicies, conn)).toMatchObject({ allowed: true, perRequest: true });
    expect(request("GET", SMALL_PATH).allowed).toBe(true);
    expect(request("GET", "/not-allowed").allowed).toBe(false);
    expect(request("POST", SMALL_PATH).allowed).toBe(false);
    // A DENY rule fires only on its own path, method and header.
    expect(request("DELETE", "/deny-3/x", { "x-bench-deny": "3" }).reason).toMatch(/bench-authz-03/);
    // Another namespace's client is not the bench client.
    const other = { ...conn, sourceIdentity: "spiffe://cluster.local/ns/other/sa/client" };
    expect(
      authorize(model.authorizationPolicies, { ...other, request: { method: "GET", path: SMALL_PATH, host: "h", headers: {} } }).allowed,
    ).toBe(false);
  });

  it("refuses a count it cannot mean", () => {
    expect(() => authzPoliciesYaml(0, { namespace: NS, selector: {}, allowPaths: [] })).toThrow(/policy count 0/);
  });
});

describe("bench: the authorization row in http.ts", () => {
  it("compares the variant with weft-l7 at c=50, with a plain p50 ratio, and runs it at c=50 only", () => {
    const t = tableSpecs().filter((s) => s.variants.includes("weft-l7-authz"));
    expect(t.map((s) => [s.scenario.id, s.variants, s.baselines, s.p50Ratio])).toEqual([
      ["c50", ["weft-l7", "weft-l7-authz1", "weft-l7-authz"], ["direct", "weft-l7", "weft-l7-authz1"], true],
    ]);
    for (const v of ["weft-l7-authz", "weft-l7-authz1"] as const)
      expect(["c1", "c50", "conn"].filter((id) => runs({ id }, v))).toEqual(["c50"]);
    expect(["c1", "c50", "conn"].filter((id) => runs({ id }, "weft-l7"))).toEqual(["c1", "c50"]);
    expect(["c1", "c50", "conn"].filter((id) => runs({ id }, "weft"))).toEqual(["c1", "c50", "conn"]);
  });

  it("counts the destination's requests apart from the source's", () => {
    const text = [
      `istio_requests_total{reporter="source",destination_service_namespace="${NS}",response_code="200"} 5`,
      `istio_requests_total{reporter="destination",destination_service_namespace="${NS}",response_code="200"} 3`,
      `istio_requests_total{reporter="destination",destination_service_namespace="${NS}",response_code="403"} 1`,
    ].join("\n");
    expect(l7RequestCount(text, NS)).toBe(9);
    expect(l7RequestCount(text, NS, "destination")).toBe(4);
    expect(l7RequestCount(text, NS, "source")).toBe(5);
  });
});
