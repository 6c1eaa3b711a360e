/**
 * A throwaway PKI for proxy tests, made with the openssl CLI: a root and SPIFFE leaf certificates
 * (ECDSA P-256, URI SAN). Independent of weft's own CA so the proxy is tested against certificates
 * it did not make.
 */
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { IdentitySource, WorkloadCertificate } from "../../agent/identity/types.js";
import { runSync } from "../../native/exec.js";

/** A CA that issues SPIFFE certificates. */
export class TestPki {
  readonly dir: string;
  readonly rootPem: string;
  private n = 0;

  constructor(name = "weft-test-root") {
    this.dir = mkdtempSync(join(tmpdir(), "weft-pki-"));
    const key = join(this.dir, "root.key");
    runSync("openssl", ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key]);
    runSync("openssl", [
      "req",
      "-x509",
      "-new",
      "-key",
      key,
      "-subj",
      `/O=${name}`,
      "-days",
      "2",
      "-out",
      join(this.dir, "root.pem"),
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    this.rootPem = readFileSync(join(this.dir, "root.pem"), "utf8");
  }

  /** Issues a leaf for a SPIFFE id (or any URI SANs, or a CA certificate, to test bad certificates). */
  issue(identity: string, opts: { uris?: string[]; days?: number; ca?: boolean } = {}): WorkloadCertificate {
    const i = ++this.n;
    const key = join(this.dir, `leaf${i}.key`);
    const csr = join(this.dir, `leaf${i}.csr`);
    const crt = join(this.dir, `leaf${i}.pem`);
    const ext = join(this.dir, `leaf${i}.ext`);
    runSync("openssl", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key]);
    runSync("openssl", ["req", "-new", "-key", key, "-subj", "/O=weft-test", "-out", csr]);
    const uris = (opts.uris ?? [identity]).map((u) => `URI:${u}`).join(",");
    const usage = opts.ca ? "digitalSignature,keyCertSign,cRLSign" : "digitalSignature,keyEncipherment";
    writeFileSync(
      ext,
      `subjectAltName=critical,${uris}\nkeyUsage=critical,${usage}\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=critical,CA:${opts.ca ? "TRUE" : "FALSE"}\n`,
    );
    runSync("openssl", [
      "x509",
      "-req",
      "-in",
      csr,
      "-CA",
      join(this.dir, "root.pem"),
      "-CAkey",
      join(this.dir, "root.key"),
      "-CAcreateserial",
      "-days",
      String(opts.days ?? 1),
      "-extfile",
      ext,
      "-out",
      crt,
    ]);
    const pem = readFileSync(crt, "utf8");
    const x = new X509Certificate(pem);
    return {
      identity,
      certChainPem: pem,
      keyPem: readFileSync(key, "utf8"),
      serial: x.serialNumber,
      notBefore: new Date(x.validFrom),
      notAfter: new Date(x.validTo),
    };
  }

  /** Removes the PKI's files. */
  dispose(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** An IdentitySource over certificates issued up front. */
export class StaticIdentities implements IdentitySource {
  private readonly certs = new Map<string, WorkloadCertificate>();
  private readonly listeners = new Set<() => void>();

  constructor(
    private bundle: string[],
    certs: WorkloadCertificate[] = [],
  ) {
    for (const c of certs) this.certs.set(c.identity, c);
  }

  /** Replaces the trust bundle (a root rotation or retirement). */
  setBundle(bundle: string[]): void {
    this.bundle = bundle;
    for (const l of this.listeners) l();
  }

  /** Adds or replaces a certificate. */
  put(cert: WorkloadCertificate): void {
    this.certs.set(cert.identity, cert);
    for (const l of this.listeners) l();
  }

  async certificate(identity: string): Promise<WorkloadCertificate> {
    const c = this.certs.get(identity);
    if (!c) throw new Error(`no certificate for ${identity}`);
    return c;
  }

  cached(identity: string): WorkloadCertificate | undefined {
    return this.certs.get(identity);
  }

  trustBundle(): readonly string[] {
    return this.bundle;
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
