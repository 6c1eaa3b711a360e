/**
 * The wire contract: every resource type survives encode → decode unchanged (so the .proto and
 * the model agree field for field), and what an agent must refuse is refused with the field's path.
 */
import { X509Certificate } from "node:crypto";
import type protobuf from "protobufjs";
import { describe, expect, it } from "vitest";
import { fingerprint256 } from "../../common/pki/x509.js";
import { messageType } from "../../controller/api/proto.js";
import {
  decodeResource,
  encodeResource,
  kindOfTypeUrl,
  RESOURCE_KINDS,
  type ResourceKind,
  resourceName,
  typeUrlOf,
} from "../../controller/api/resources.js";
import { toWire } from "../../controller/api/wire-encode.js";
import { generateRoot } from "../../controller/ca/root-store.js";
import { AUTHZ, DESTINATION, fixtures, PEER, ROUTES, SERVICE, WORKLOAD } from "../helpers/control-fixtures-model.js";

const root = generateRoot("cluster.local");
const bundle = {
  trustDomain: "cluster.local",
  rootsPem: [root.certPem],
  signingRootSha256: fingerprint256(new X509Certificate(root.certPem)),
};
const all = fixtures(bundle);

function roundTrip<K extends ResourceKind>(kind: K, value: unknown): unknown {
  return decodeResource(kind, resourceName(kind, value as never), encodeResource(kind, value as never));
}

/** Every (message, field) pair a value sets, walking nested messages. */
function fieldsSet(type: protobuf.Type, value: unknown, out = new Set<string>()): Set<string> {
  if (value === null || typeof value !== "object") return out;
  for (const field of type.fieldsArray) {
    const v = (value as Record<string, unknown>)[field.name];
    if (v === undefined || v === null) continue;
    out.add(`${type.name}.${field.name}`);
    field.resolve();
    if (field.resolvedType && "fieldsArray" in field.resolvedType) {
      const sub = field.resolvedType as protobuf.Type;
      if (field.map) for (const x of Object.values(v as object)) fieldsSet(sub, x, out);
      else if (Array.isArray(v)) for (const x of v) fieldsSet(sub, x, out);
      else fieldsSet(sub, v, out);
    }
  }
  return out;
}

/** Every (message, field) pair reachable from a type. */
function allFields(type: protobuf.Type, out = new Set<string>(), seen = new Set<string>()): Set<string> {
  if (seen.has(type.name)) return out;
  seen.add(type.name);
  for (const field of type.fieldsArray) {
    out.add(`${type.name}.${field.name}`);
    field.resolve();
    if (field.resolvedType && "fieldsArray" in field.resolvedType) allFields(field.resolvedType as protobuf.Type, out, seen);
  }
  return out;
}

describe("wire contract", () => {
  it.each(RESOURCE_KINDS)("%s survives encode → decode unchanged", (kind) => {
    expect(roundTrip(kind, all[kind])).toEqual(all[kind]);
  });

  it("the fixtures set every field of every message, so a field missing from the .proto or the model shows up above", () => {
    const missing: string[] = [];
    for (const kind of RESOURCE_KINDS) {
      const type = messageType(`weft.mesh.v1.${kind}`);
      const set = fieldsSet(type, toWire(kind, all[kind]));
      for (const f of allFields(type)) if (!set.has(f)) missing.push(f);
    }
    expect(missing).toEqual([]);
  });

  it("decoded values are frozen (a published snapshot cannot be changed under a reader)", () => {
    const w = roundTrip("Workload", WORKLOAD) as typeof WORKLOAD;
    expect(Object.isFrozen(w)).toBe(true);
    expect(Object.isFrozen(w.labels)).toBe(true);
    expect(() => {
      (w.addresses as string[]).push("x");
    }).toThrow();
  });

  it("maps type URLs both ways and refuses unknown ones", () => {
    for (const k of RESOURCE_KINDS) expect(kindOfTypeUrl(typeUrlOf(k))).toBe(k);
    expect(kindOfTypeUrl("type.googleapis.com/envoy.config.cluster.v3.Cluster")).toBeUndefined();
    expect(kindOfTypeUrl("type.weft.dev/weft.mesh.v1.Nope")).toBeUndefined();
  });

  const bad: [string, ResourceKind, unknown, RegExp][] = [
    [
      "a pod IP that is not an IP",
      "Workload",
      { ...WORKLOAD, addresses: ["10.0.0.999"] },
      /^addresses\[0\]: '10.0.0.999' is not an IP address$/,
    ],
    [
      "an identity that does not match",
      "Workload",
      { ...WORKLOAD, identity: "spiffe://cluster.local/ns/shop/sa/other" },
      /^identity: .* does not match/,
    ],
    ["no uid", "Workload", { ...WORKLOAD, uid: "" }, /^uid: must not be empty$/],
    [
      "a port out of range",
      "Service",
      { ...SERVICE, ports: [{ port: 70000, targetPort: 80, appProtocol: "tcp" }] },
      /^ports\[0\]\.port: 70000 is out of range 1\.\.65535$/,
    ],
    [
      "an unknown protocol",
      "Service",
      { ...SERVICE, ports: [{ port: 80, targetPort: 80, appProtocol: "quic" }] },
      /appProtocol: 'quic' is not one of tcp, http, http2, grpc/,
    ],
    [
      "an endpoint address that is not an IP",
      "Service",
      { ...SERVICE, endpoints: [{ workloadUid: "u", address: "web", ready: true }] },
      /^endpoints\[0\]\.address: 'web' is not an IP address$/,
    ],
    ["a key that is not ns/name", "Service", { ...SERVICE, key: "other/web" }, /^key: 'other\/web' is not 'shop\/web'$/],
    ["an unknown action", "AuthorizationPolicy", { ...AUTHZ, action: "MAYBE" }, /^action: 'MAYBE' is not one of ALLOW, DENY, AUDIT$/],
    [
      "a bad CIDR",
      "AuthorizationPolicy",
      { ...AUTHZ, rules: [{ from: [{ ipBlocks: ["10.0.0.0/33"] }], to: [], when: [] }] },
      /rules\[0\]\.from\[0\]\.ipBlocks\[0\]: '10.0.0.0\/33' has an invalid prefix length/,
    ],
    [
      "a workload scope without selector",
      "AuthorizationPolicy",
      { ...AUTHZ, scope: { kind: "workload" } },
      /scope\.selector: a workload-scoped policy needs a selector/,
    ],
    [
      "an unknown mTLS mode",
      "PeerAuthentication",
      { ...PEER, mode: "OPTIONAL" },
      /^mode: 'OPTIONAL' is not one of STRICT, PERMISSIVE, DISABLE, UNSET$/,
    ],
    [
      "a port-level key that is not a port",
      "PeerAuthentication",
      { ...PEER, portLevelMtls: { http: "STRICT" } },
      /portLevelMtls: 'http' is not a port number/,
    ],
    [
      "a regex that does not compile",
      "RouteTable",
      {
        ...ROUTES,
        http: [
          { ...ROUTES.http[0], matches: [{ ignorePathCase: false, headers: [], queryParams: [], path: { kind: "regex", value: "(" } }] },
        ],
      },
      /http\[0\]\.matches\[0\]\.path\.value: regex '\(' does not compile/,
    ],
    [
      "a rule with two actions",
      "RouteTable",
      { ...ROUTES, http: [{ matches: [], destinations: [{ host: "h", weight: 1 }], directResponse: { status: 200 }, mirrors: [] }] },
      /http\[0\]: a rule needs exactly one of destinations, redirect, directResponse/,
    ],
    [
      "a percentage over 100",
      "RouteTable",
      {
        ...ROUTES,
        http: [
          { matches: [], destinations: [{ host: "h", weight: 1 }], mirrors: [{ destination: { host: "m", weight: 1 }, percentage: 150 }] },
        ],
      },
      /mirrors\[0\]\.percentage: 150 is out of range 0\.\.100/,
    ],
    [
      "two subsets with one name",
      "DestinationPolicy",
      {
        ...DESTINATION,
        subsets: [
          { name: "v1", labels: {} },
          { name: "v1", labels: {} },
        ],
      },
      /subsets: subset 'v1' is defined twice/,
    ],
    [
      "two hash keys",
      "DestinationPolicy",
      { ...DESTINATION, trafficPolicy: { loadBalancer: { consistentHash: { header: "a", sourceIp: true } }, portLevel: [] } },
      /consistentHash: exactly one of/,
    ],
    [
      "a root that is not a certificate",
      "TrustBundle",
      { ...bundle, rootsPem: ["-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"] },
      /^rootsPem\[0\]: not a PEM certificate/,
    ],
    ["an empty bundle", "TrustBundle", { ...bundle, rootsPem: [] }, /^rootsPem: a trust bundle needs at least one root$/],
  ];
  it.each(bad)("refuses %s, naming the field", (_what, kind, value, why) => {
    expect(() => roundTrip(kind, value)).toThrow(why);
  });

  it("refuses a body that is not the named message, or named differently", () => {
    expect(() => decodeResource("Workload", "u-1", new Uint8Array([0x0a, 0xff, 0xff]))).toThrow(/not a valid Workload message/);
    expect(() => decodeResource("Workload", "u-2", encodeResource("Workload", WORKLOAD))).toThrow(
      /resource is named 'u-2' but its body is 'u-1'/,
    );
  });
});
