/** The CA: issuance checked by OpenSSL, the root's persistence, plug-in CAs, root rotation. */
import { generateKeyPairSync, X509Certificate } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CsrError, createCsr } from "../../common/pki/csr.js";
import { fingerprint256, issueCertificate, uriSans } from "../../common/pki/x509.js";
import { type CaMaterial, CertificateAuthority, checkMaterial, readPrivateKey } from "../../controller/ca/ca.js";
import { CA_FILES, caDir, generateRoot, loadPluginCa, loadStateDirCa, rotateRoot } from "../../controller/ca/root-store.js";
import { runSync } from "../../native/exec.js";

const ID = "spiffe://cluster.local/ns/shop/sa/web";
const base = mkdtempSync(join(tmpdir(), "weft-ca-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(base, `d${++n}`);

function csr(identity = ID): string {
  return createCsr(identity, generateKeyPairSync("ec", { namedCurve: "prime256v1" }));
}

/** `openssl verify` of a chain against roots; returns its output (throws when it fails). */
function opensslVerify(roots: string[], chain: string[]): string {
  const d = fresh();
  mkdirSync(d);
  writeFileSync(join(d, "roots.pem"), roots.join(""));
  writeFileSync(join(d, "leaf.pem"), chain[0] as string);
  writeFileSync(join(d, "untrusted.pem"), chain.slice(1).join("") || (chain[0] as string));
  const args = [
    "verify",
    "-CAfile",
    join(d, "roots.pem"),
    ...(chain.length > 1 ? ["-untrusted", join(d, "untrusted.pem")] : []),
    join(d, "leaf.pem"),
  ];
  return runSync("openssl", args).stdout;
}

function stateCa(dir = fresh(), ttl = { defaultTtlMs: 24 * 3600_000, maxTtlMs: 48 * 3600_000 }) {
  const { material, created } = loadStateDirCa(dir, "cluster.local");
  return { dir, created, ca: new CertificateAuthority(material, { trustDomain: "cluster.local", ...ttl }) };
}

describe("the CA", () => {
  it("signs SPIFFE SVIDs that OpenSSL verifies, with the URI SAN and the TTL", () => {
    const { ca } = stateCa();
    const issued = ca.signWorkload(csr(), ID);
    expect(opensslVerify(ca.roots(), issued.chain)).toMatch(/leaf.pem: OK/);
    const text = runSync("openssl", ["x509", "-noout", "-text"], { input: issued.chain[0] }).stdout;
    expect(text).toMatch(/X509v3 Subject Alternative Name: critical\s+URI:spiffe:\/\/cluster.local\/ns\/shop\/sa\/web\s/);
    expect(text).toMatch(/CA:FALSE/);
    expect(text).toMatch(/TLS Web Server Authentication, TLS Web Client Authentication/);
    const c = new X509Certificate(issued.chain[0] as string);
    expect(uriSans(c)).toEqual([ID]);
    // What the CA reports without parsing agrees with the certificate.
    expect(issued.serial).toBe(c.serialNumber);
    expect(issued.notAfter.getTime()).toBe(new Date(c.validTo).getTime());
    const life = new Date(c.validTo).getTime() - Date.now();
    expect(life).toBeGreaterThan(24 * 3600_000 - 5000);
    expect(life).toBeLessThanOrEqual(24 * 3600_000);
    expect(Date.now() - new Date(c.validFrom).getTime()).toBeGreaterThanOrEqual(59_000); // backdated for clock skew
  });

  it("grants the requested lifetime up to the maximum", () => {
    const { ca } = stateCa();
    const hours = (s: number) => (ca.signWorkload(csr(), ID, s).notAfter.getTime() - Date.now()) / 3600_000;
    expect(hours(3600)).toBeCloseTo(1, 1);
    expect(hours(7 * 24 * 3600)).toBeCloseTo(48, 1);
  });

  it("refuses identities outside its trust domain and CSRs for another identity", () => {
    const { ca } = stateCa();
    expect(() => ca.signWorkload(csr("spiffe://other.domain/ns/shop/sa/web"), "spiffe://other.domain/ns/shop/sa/web")).toThrow(
      /not in this mesh's trust domain 'cluster.local'/,
    );
    expect(() => ca.signWorkload(csr("spiffe://cluster.local/ns/shop/sa/admin"), ID)).toThrow(CsrError);
    expect(() => ca.signWorkload(csr(), "web")).toThrow(/not a SPIFFE id/);
  });

  it("generates its root on first start (key 0600), and loads the same one afterwards", () => {
    const first = stateCa();
    expect(first.created).toBe(true);
    const key = join(caDir(first.dir), CA_FILES.rootKey);
    expect(statSync(key).mode & 0o777).toBe(0o600);
    expect(readFileSync(key, "utf8")).toMatch(/BEGIN PRIVATE KEY/);
    const again = stateCa(first.dir);
    expect(again.created).toBe(false);
    expect(again.ca.trustBundle()).toEqual(first.ca.trustBundle());
    const root = new X509Certificate(again.ca.roots()[0] as string);
    expect(root.ca).toBe(true);
    expect(uriSans(root)).toEqual(["spiffe://cluster.local"]);
  });

  it("refuses a state dir with a root certificate but no key", () => {
    const { dir } = stateCa();
    rmSync(join(caDir(dir), CA_FILES.rootKey));
    expect(() => loadStateDirCa(dir, "cluster.local")).toThrow(/only one of root-cert.pem and root-key.pem exists/);
  });

  it("signs with a plug-in intermediate (Istio's cacerts layout); chains verify with OpenSSL", () => {
    const root = generateRoot("cluster.local");
    const rootKey = readPrivateKey(root.keyPem, "root");
    const interKeys = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    const inter = issueCertificate(
      {
        spki: interKeys.publicKey.export({ type: "spki", format: "der" }) as Buffer,
        subject: { O: "weft", CN: "intermediate" },
        notBefore: new Date(Date.now() - 60_000),
        notAfter: new Date(Date.now() + 3600_000 * 24 * 30),
        isCa: true,
      },
      { key: rootKey, cert: new X509Certificate(root.certPem) },
    );
    const d = fresh();
    mkdirSync(d);
    writeFileSync(join(d, "ca-cert.pem"), inter.pem);
    writeFileSync(join(d, "ca-key.pem"), interKeys.privateKey.export({ type: "pkcs8", format: "pem" }) as string);
    writeFileSync(join(d, "root-cert.pem"), root.certPem);
    writeFileSync(join(d, "cert-chain.pem"), inter.pem + root.certPem);
    const ca = new CertificateAuthority(loadPluginCa(d), { trustDomain: "cluster.local", defaultTtlMs: 3600_000, maxTtlMs: 3600_000 });
    const issued = ca.signWorkload(csr(), ID);
    expect(issued.chain).toHaveLength(2); // leaf + intermediate
    expect(issued.roots).toEqual([root.certPem]);
    expect(opensslVerify(issued.roots, issued.chain)).toMatch(/OK/);
  });

  it("refuses plug-in material that does not hang together, saying what is wrong", () => {
    const a = generateRoot("cluster.local");
    const b = generateRoot("cluster.local");
    const m = (over: Partial<CaMaterial>): CaMaterial => ({
      origin: "test files",
      signingKey: readPrivateKey(a.keyPem, "a"),
      signingCertPem: a.certPem,
      intermediatesPem: [],
      rootPem: a.certPem,
      extraRootsPem: [],
      ...over,
    });
    expect(() => checkMaterial(m({ signingKey: readPrivateKey(b.keyPem, "b") }))).toThrow(
      /test files: the CA key does not belong to the signing certificate/,
    );
    expect(() => checkMaterial(m({ rootPem: b.certPem }))).toThrow(/is not signed by .*chain to the root is broken/);
    const d = fresh();
    mkdirSync(d);
    writeFileSync(join(d, "ca-cert.pem"), a.certPem);
    expect(() => loadPluginCa(d)).toThrow(/ca-key.pem, root-cert.pem are missing/);
  });

  it("issues a serving certificate for the controller's names and addresses", () => {
    const { ca } = stateCa();
    const s = ca.issueServing(["weft-controller", "weft-controller.weft-system.svc"], ["10.250.0.1", "127.0.0.1"], 3600_000);
    const c = new X509Certificate(s.certChainPem);
    expect(c.subjectAltName).toBe("DNS:weft-controller, DNS:weft-controller.weft-system.svc, IP Address:10.250.0.1, IP Address:127.0.0.1");
    expect(c.checkIP("10.250.0.1")).toBe("10.250.0.1");
    expect(c.checkPrivateKey(readPrivateKey(s.keyPem, "serving"))).toBe(true);
  });

  it("rotates its root in three steps, trusting old and new roots during the overlap", () => {
    const { dir, ca } = stateCa();
    const oldRoot = ca.roots()[0] as string;
    const beforeCert = ca.signWorkload(csr(), ID);
    expect(rotateRoot(dir, "prepare", "cluster.local")).toMatch(/prepared next root/);
    expect(() => rotateRoot(dir, "prepare", "cluster.local")).toThrow(/already prepared/);
    let m = loadStateDirCa(dir, "cluster.local").material;
    ca.replace(m);
    expect(ca.roots()).toHaveLength(2); // old signs, new is trusted
    expect(ca.trustBundle().signingRootSha256).toBe(fingerprint256(new X509Certificate(oldRoot)));

    expect(rotateRoot(dir, "activate", "cluster.local")).toMatch(/the new root signs now/);
    m = loadStateDirCa(dir, "cluster.local").material;
    ca.replace(m);
    const roots = ca.roots();
    expect(roots).toHaveLength(2);
    expect(roots[1]).toBe(oldRoot);
    const afterCert = ca.signWorkload(csr(), ID);
    // During the overlap both the old and the new certificates verify against the bundle.
    expect(opensslVerify(roots, beforeCert.chain)).toMatch(/OK/);
    expect(opensslVerify(roots, afterCert.chain)).toMatch(/OK/);
    expect(() => opensslVerify([oldRoot], afterCert.chain)).toThrow();

    expect(rotateRoot(dir, "finish", "cluster.local")).toMatch(/no longer trusted/);
    ca.replace(loadStateDirCa(dir, "cluster.local").material);
    expect(ca.roots()).toEqual([roots[0]]);
    expect(() => opensslVerify(ca.roots(), beforeCert.chain)).toThrow();
    expect(() => rotateRoot(dir, "activate", "cluster.local")).toThrow(/no next root is prepared/);
  });

  it("completes a root activation interrupted between the key and the certificate", () => {
    const { dir } = stateCa();
    rotateRoot(dir, "prepare", "cluster.local");
    const d = caDir(dir);
    const nextFp = fingerprint256(new X509Certificate(readFileSync(join(d, CA_FILES.nextCert), "utf8")));
    renameSync(join(d, CA_FILES.nextKey), join(d, CA_FILES.rootKey)); // the crash happened right here
    const { material } = loadStateDirCa(dir, "cluster.local");
    expect(fingerprint256(new X509Certificate(material.rootPem))).toBe(nextFp);
    expect(existsSync(join(d, CA_FILES.nextCert))).toBe(false);
    expect(() => checkMaterial(material)).not.toThrow();
  });
});
