/**
 * The agent's identity manager against a real controller CA: one certificate per local service
 * account, fetched once when a pod appears, renewed before expiry, dropped with the last pod,
 * served from cache while the CA is away, re-issued after a root rotation.
 */
import { X509Certificate } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { fingerprint256 } from "../../common/pki/x509.js";
import { rotateRoot } from "../../controller/ca/root-store.js";
import { ControlFixture } from "../helpers/control-fixture.js";
import { namespace, node, pod } from "../helpers/control-objects.js";
import { waitFor } from "../helpers/wait.js";

const id = (sa: string) => `spiffe://cluster.local/ns/shop/sa/${sa}`;
const base = [namespace("shop", { "weft.dev/mesh": "enabled" }), node("n1", "10.250.0.11"), node("n2", "10.250.0.12")];
const web = pod({ name: "web", ns: "shop", node: "n1", ip: "10.244.1.2", sa: "web" });
const db = pod({ name: "db", ns: "shop", node: "n2", ip: "10.244.2.2", sa: "db" });

describe("identity manager", () => {
  let f: ControlFixture | undefined;
  afterEach(async () => {
    await f?.stop();
    f = undefined;
  });

  const issuedFor = (fx: ControlFixture, identity: string) =>
    fx.controllerLog.find(/certificate issued/).filter((l) => l.identity === identity).length;

  it("fetches one certificate per local service account when a pod appears, deduplicating concurrent requests", async () => {
    f = await ControlFixture.start([...base, web, db]);
    const { app } = await f.agent("n1");
    await waitFor("web's certificate", () => app.identity.cached(id("web")));
    expect(app.identity.cached(id("db"))).toBeUndefined(); // db runs on n2 only
    await expect(app.identity.certificate(id("db"))).rejects.toThrow(/no pod in the mesh on this node runs as .*sa\/db/);

    const api = pod({ name: "api", ns: "shop", node: "n1", ip: "10.244.1.7", sa: "api" });
    f.write(api);
    await app.updater.state.when((s) => s.view.localWorkloads().some((w) => w.name === "api"), 5000);
    const certs = await Promise.all(Array.from({ length: 5 }, () => app.identity.certificate(id("api"))));
    expect(new Set(certs.map((c) => c.serial)).size).toBe(1);
    expect(issuedFor(f, id("api"))).toBe(1);

    // A second pod of the same service account shares the certificate; the last one leaving drops it.
    const web2 = pod({ name: "web-2", ns: "shop", node: "n1", ip: "10.244.1.8", sa: "web" });
    f.write(web2);
    await app.updater.state.when((s) => s.view.localWorkloads().some((w) => w.name === "web-2"), 5000);
    expect(issuedFor(f, id("web"))).toBe(1);
    f.remove(web);
    await app.updater.state.when((s) => !s.view.localWorkloads().some((w) => w.name === "web"), 5000);
    expect(app.identity.cached(id("web"))).toBeDefined();
    f.remove(web2);
    await waitFor("web's certificate dropped", () => !app.identity.status().some((c) => c.identity === id("web")));
    expect(app.identity.cached(id("web"))).toBeUndefined();
  });

  it("gets no certificate for a pod outside the mesh, and the CA refuses one for it", async () => {
    const outside = pod({ name: "plain", ns: "plain", node: "n1", ip: "10.244.1.3", sa: "plain" });
    f = await ControlFixture.start([...base, namespace("plain"), web, outside]);
    const { app } = await f.agent("n1");
    await waitFor("web's certificate", () => app.identity.cached(id("web")));
    const plainId = "spiffe://cluster.local/ns/plain/sa/plain";
    await expect(app.identity.certificate(plainId)).rejects.toThrow(/no pod in the mesh on this node runs as/);
    expect(f.controller.xds.resources?.selector.identitiesOn("n1")).toEqual(new Set([id("web")]));
  });

  it("renews before expiry (short TTL), at about half life", async () => {
    f = await ControlFixture.start([...base, web], { certTtl: "4s" });
    const { app } = await f.agent("n1");
    const first = await app.identity.certificate(id("web"));
    const issuedAt = Date.now();
    const renewed = await waitFor(
      "a renewed certificate",
      () => {
        const c = app.identity.cached(id("web"));
        return c && c.serial !== first.serial ? { cert: c, at: Date.now() } : null;
      },
      8000,
      20,
    );
    expect(renewed.at).toBeLessThan(first.notAfter.getTime());
    const life = first.notAfter.getTime() - issuedAt;
    expect(renewed.at - issuedAt).toBeGreaterThan(life * 0.3);
    expect(renewed.at - issuedAt).toBeLessThan(life * 0.7);
    expect(renewed.cert.notAfter.getTime()).toBeGreaterThan(first.notAfter.getTime());
    const status = app.identity.status().find((s) => s.identity === id("web"));
    expect(status).toMatchObject({ state: "valid", issued: 2, serial: renewed.cert.serial });
    expect(status?.secondsToRenewal).toBeLessThanOrEqual(4);
  });

  it("keeps serving the cached certificate while the CA is away, and renews once it is back", async () => {
    f = await ControlFixture.start([...base, web], { certTtl: "6s" });
    const { app, log } = await f.agent("n1");
    const first = await app.identity.certificate(id("web"));
    await f.killController();
    // Half life passes with no CA: the renewal fails, the cached certificate is still served.
    await waitFor("a failed renewal", () => log.find(/certificate request failed/)[0], 8000);
    expect(await app.identity.certificate(id("web"))).toBe(first);
    expect(app.identity.status()[0]).toMatchObject({ state: "failing", serial: first.serial });
    await f.restartController();
    const next = await waitFor(
      "renewed after the CA came back",
      () => {
        const c = app.identity.cached(id("web"));
        return c && c.serial !== first.serial ? c : null;
      },
      8000,
    );
    expect(next.notAfter.getTime()).toBeGreaterThan(first.notAfter.getTime());
  });

  it("re-issues certificates under the new root after a root rotation", async () => {
    f = await ControlFixture.start([...base, web]);
    const fx = f;
    const { app } = await fx.agent("n1", {}, (c) => {
      c.rotationSpreadMs = 50;
    });
    const before = await app.identity.certificate(id("web"));
    const rootOf = (pem: string) => fingerprint256(new X509Certificate(pem));
    const bundle = () => app.updater.state.get().trustBundle;
    const oldFp = bundle()?.signingRootSha256;
    rotateRoot(fx.stateDir, "prepare", "cluster.local");
    await waitFor("both roots pushed", () => bundle()?.rootsPem.length === 2, 10_000);
    expect(bundle()?.signingRootSha256).toBe(oldFp); // trusted first, not signing yet
    expect(app.identity.cached(id("web"))?.serial).toBe(before.serial);
    rotateRoot(fx.stateDir, "activate", "cluster.local");
    await waitFor("new signing root pushed", () => bundle()?.signingRootSha256 !== oldFp, 10_000);
    const after = await waitFor(
      "re-issued certificate",
      () => {
        const c = app.identity.cached(id("web"));
        return c && c.serial !== before.serial ? c : null;
      },
      5000,
    );
    const leaf = new X509Certificate(after.certChainPem);
    const newRoot = bundle()?.rootsPem.find((r) => rootOf(r) === bundle()?.signingRootSha256) as string;
    expect(leaf.verify(new X509Certificate(newRoot).publicKey)).toBe(true);
    expect(app.identity.trustBundle()).toHaveLength(2); // the old root stays trusted during the overlap
  });
});
