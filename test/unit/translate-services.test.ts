/** Translation of Services and EndpointSlices: VIPs, target ports, protocols, endpoints. */
import { describe, expect, it } from "vitest";
import type { KubeObject } from "../../controller/api/kube-types.js";
import { translate } from "../../controller/translate/index.js";
import { appProtocolOf } from "../../controller/translate/services.js";
import { namespace, node, objects, pod, service } from "../helpers/control-objects.js";

const base = [namespace("shop"), node("n1", "10.250.0.11")];
const web = pod({ name: "web", ns: "shop", node: "n1", ip: "10.244.1.2" });
const web2 = pod({ name: "web2", ns: "shop", node: "n1", ip: "10.244.1.3" });

describe("translate: services", () => {
  it("builds VIPs, hostname, ports with target ports from the EndpointSlice, and endpoints", () => {
    const m = translate(
      objects([...base, web, ...service("web", "shop", "10.96.0.10", [{ name: "http-web", port: 80, targetPort: 8080 }], [web])]),
    );
    expect(m.services).toEqual([
      {
        key: "shop/web",
        name: "web",
        namespace: "shop",
        hostname: "web.shop.svc.cluster.local",
        vips: ["10.96.0.10"],
        ports: [{ name: "http-web", port: 80, targetPort: 8080, appProtocol: "http" }],
        endpoints: [{ workloadUid: "uid-shop-web", address: "10.244.1.2", ready: true }],
      },
    ]);
  });

  it("resolves a named targetPort from the slice by port name, else from the pods' container ports", () => {
    const [svc, slice] = service("web", "shop", "10.96.0.10", [{ name: "http", port: 80, targetPort: 9999 }], [web]) as [
      KubeObject,
      KubeObject,
    ];
    (svc.spec as { ports: { targetPort: unknown }[] }).ports[0] = { name: "http", port: 80, targetPort: "web-port" } as never;
    (slice as unknown as { ports: { name: string; port: number }[] }).ports = [{ name: "http", port: 8443 }];
    expect(translate(objects([...base, web, svc, slice])).services[0]?.ports[0]?.targetPort).toBe(8443);
    // No slice port of that name: look the name up in the endpoint pods' containers.
    (slice as unknown as { ports: unknown[] }).ports = [];
    (web.spec as { containers?: unknown }).containers = [{ name: "app", ports: [{ name: "web-port", containerPort: 7070 }] }];
    expect(translate(objects([...base, web, svc, slice])).services[0]?.ports[0]?.targetPort).toBe(7070);
    delete (web.spec as { containers?: unknown }).containers;
    const m = translate(objects([...base, web, svc, slice]));
    expect(m.services[0]?.ports).toEqual([]);
    expect(m.diagnostics[0]?.message).toMatch(/targetPort 'web-port' cannot be resolved to a number; port skipped/);
  });

  it.each([
    [undefined, "http", "http"],
    [undefined, "http2-x", "http2"],
    [undefined, "grpc", "grpc"],
    [undefined, "https", "tcp"],
    [undefined, "mysql", "tcp"],
    [undefined, undefined, "auto"],
    [undefined, "web", "auto"],
    [undefined, "tcp-db", "tcp"],
    ["kubernetes.io/h2c", "web", "http2"],
    ["HTTP", "tcp-x", "http"],
    ["grpc-web", undefined, "http"],
    ["kubernetes.io/ws", undefined, "http"],
    ["redis", "http", "tcp"],
  ])("protocol of appProtocol %s / port name %s is %s", (ap, name, expected) => {
    expect(appProtocolOf(ap, name)).toBe(expected);
  });

  it("keeps headless services (no VIP), leaves out ExternalName services and UDP ports, rejects a bad clusterIP", () => {
    const [headless, hslice] = service("db", "shop", "None", [{ port: 5432, targetPort: 5432 }], [web]);
    const ext: KubeObject = {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "ext", namespace: "shop" },
      spec: { type: "ExternalName" },
    };
    const [udp] = service("dns", "shop", "10.96.0.53", [{ port: 53, targetPort: 53 }], []);
    (udp?.spec as { ports: { protocol: string }[] }).ports.forEach((p) => {
      p.protocol = "UDP";
    });
    const [bad] = service("bad", "shop", "10.96.0.999", [{ port: 80, targetPort: 80 }], []);
    const m = translate(objects([...base, web, headless as KubeObject, hslice as KubeObject, ext, udp as KubeObject, bad as KubeObject]));
    expect(m.services.map((s) => [s.key, s.vips, s.ports.length])).toEqual([
      ["shop/db", [], 1],
      ["shop/dns", ["10.96.0.53"], 0],
    ]);
    expect(m.diagnostics).toEqual([
      expect.objectContaining({ severity: "error", message: "spec.clusterIP '10.96.0.999' is not an IP address; service skipped" }),
    ]);
  });

  it("merges slices, skips FQDN ones, and reads endpoint conditions (unset = ready; terminating = not)", () => {
    const [svc, s1] = service("web", "shop", "10.96.0.10", [{ port: 80, targetPort: 80 }], [web]) as [
      KubeObject,
      KubeObject & { endpoints: { conditions?: object }[] },
    ];
    const s2 = structuredClone(s1);
    s2.metadata.name = "web-second";
    s2.endpoints = [
      {
        addresses: ["10.244.1.3"],
        conditions: { ready: true, terminating: true },
        targetRef: { kind: "Pod", name: "web2", uid: "uid-shop-web2" },
      } as never,
    ];
    const s3 = structuredClone(s1) as unknown as { addressType: string; metadata: { name: string } };
    s3.metadata.name = "web-fqdn";
    s3.addressType = "FQDN";
    delete s1.endpoints[0]?.conditions;
    const m = translate(objects([...base, web, web2, svc, s1, s2, s3 as unknown as KubeObject]));
    expect(m.services[0]?.endpoints).toEqual([
      { workloadUid: "uid-shop-web", address: "10.244.1.2", ready: true },
      { workloadUid: "uid-shop-web2", address: "10.244.1.3", ready: false },
    ]);
  });
});
