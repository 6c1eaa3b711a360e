/**
 * The CA over gRPC with node authorization: a node's agent gets certificates only for identities
 * with a pod on its node; unauthenticated callers and bad CSRs are refused with a reason, and
 * nothing else is disturbed.
 */
import { generateKeyPairSync, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCsr } from "../../common/pki/csr.js";
import { uriSans } from "../../common/pki/x509.js";
import { runSync } from "../../native/exec.js";
import { rawCsr } from "../helpers/control-client.js";
import { ControlFixture } from "../helpers/control-fixture.js";
import { namespace, node, pod } from "../helpers/control-objects.js";

const WEB = "spiffe://cluster.local/ns/shop/sa/web";
const DB = "spiffe://cluster.local/ns/shop/sa/db";
const csr = (id: string) => createCsr(id, generateKeyPairSync("ec", { namedCurve: "prime256v1" }));

describe("CA service with node authorization", () => {
  let f: ControlFixture;
  let caPem: string;
  const tmp = mkdtempSync(join(tmpdir(), "weft-casvc-"));
  const token = (n: string) => readFileSync(join(f.stateDir, "tokens", `${n}.token`), "utf8").trim();

  beforeAll(async () => {
    f = await ControlFixture.start(
      [
        namespace("shop", { "weft.dev/mesh": "enabled" }),
        node("n1", "10.250.0.11"),
        node("n2", "10.250.0.12"),
        pod({ name: "web", ns: "shop", node: "n1", ip: "10.244.1.2" }),
        pod({ name: "db", ns: "shop", node: "n2", ip: "10.244.2.2" }),
      ],
      { certTtl: "2h" },
    );
    caPem = readFileSync(join(f.stateDir, "ca", "root-cert.pem"), "utf8");
  });
  afterAll(async () => {
    await f.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  it("issues a certificate for an identity on the caller's node; OpenSSL verifies it against the bundle", async () => {
    const res = await rawCsr(f.target, caPem, token("n1"), WEB, csr(WEB));
    const leaf = new X509Certificate(res.certChain[0] as string);
    expect(uriSans(leaf)).toEqual([WEB]);
    const hours = (new Date(leaf.validTo).getTime() - Date.now()) / 3600_000;
    expect(hours).toBeGreaterThan(1.99);
    expect(hours).toBeLessThanOrEqual(2);
    writeFileSync(join(tmp, "bundle.pem"), res.roots.join(""));
    writeFileSync(join(tmp, "leaf.pem"), res.certChain[0] as string);
    expect(runSync("openssl", ["verify", "-CAfile", join(tmp, "bundle.pem"), join(tmp, "leaf.pem")]).stdout).toMatch(/leaf.pem: OK/);
    expect(res.roots).toEqual([caPem]);
  });

  it("refuses node 1's agent an identity that only runs on node 2", async () => {
    const err = await rawCsr(f.target, caPem, token("n1"), DB, csr(DB)).catch((e) => e);
    expect(err).toMatchObject({
      code: status.PERMISSION_DENIED,
      details: `node n1 has no pod running as ${DB}: a node's agent gets certificates only for identities with a pod on that node`,
    });
    const ok = await rawCsr(f.target, caPem, token("n2"), DB, csr(DB));
    expect(ok.certChain).toHaveLength(1);
  });

  it("refuses an unauthenticated caller and an unknown token", async () => {
    expect(await rawCsr(f.target, caPem, undefined, WEB, csr(WEB)).catch((e) => e)).toMatchObject({
      code: status.UNAUTHENTICATED,
      details: expect.stringMatching(/no credential/),
    });
    expect(await rawCsr(f.target, caPem, "forged", WEB, csr(WEB)).catch((e) => e)).toMatchObject({
      code: status.UNAUTHENTICATED,
      details: expect.stringMatching(/unknown bootstrap token/),
    });
  });

  it("refuses bad CSRs with the reason, and keeps serving everyone else", async () => {
    const wrongSan = await rawCsr(f.target, caPem, token("n1"), WEB, csr("spiffe://cluster.local/ns/shop/sa/admin")).catch((e) => e);
    expect(wrongSan).toMatchObject({
      code: status.INVALID_ARGUMENT,
      details: expect.stringMatching(/bad CSR \(BAD_SAN\): CSR's URI SAN '.*admin' is not the requested identity/),
    });
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 });
    const weak = await rawCsr(f.target, caPem, token("n1"), WEB, createCsr(WEB, rsa)).catch((e) => e);
    expect(weak).toMatchObject({ code: status.INVALID_ARGUMENT, details: expect.stringMatching(/WEAK_KEY.*1024 bits/) });
    const junk = await rawCsr(f.target, caPem, token("n1"), WEB, "not a csr").catch((e) => e);
    expect(junk).toMatchObject({ code: status.INVALID_ARGUMENT, details: expect.stringMatching(/MALFORMED/) });
    const notId = await rawCsr(f.target, caPem, token("n1"), "web", csr(WEB)).catch((e) => e);
    expect(notId).toMatchObject({ code: status.INVALID_ARGUMENT, details: expect.stringMatching(/is not a SPIFFE id/) });
    expect(f.controllerLog.find(/certificate refused/).length).toBeGreaterThanOrEqual(4);
    // Nothing else disturbed.
    expect((await rawCsr(f.target, caPem, token("n1"), WEB, csr(WEB))).certChain).toHaveLength(1);
  });
});
