/**
 * The CA: signs workload CSRs into SPIFFE X.509 SVIDs and issues the controller's own serving
 * certificate. Node authorization happens before this (ca/service.ts); here the CSR itself is
 * checked (structure, signature, key strength, exactly the requested SPIFFE id).
 */
import { createPrivateKey, generateKeyPairSync, type KeyObject, X509Certificate } from "node:crypto";
import { errorMessage } from "../../common/errors.js";
import { CsrError, checkCsrIdentity, parseCsr } from "../../common/pki/csr.js";
import { fingerprint256, type PreparedIssuer, prepareIssuer, signCertificate } from "../../common/pki/x509.js";
import { parseSpiffeId } from "../api/model.js";
import type { TrustBundle } from "../api/wire-types.js";

/** Clock skew tolerated between nodes: certificates are valid from a little before issue. */
export const BACKDATE_MS = 60_000;

/** The keys and certificates a CA signs with. */
export interface CaMaterial {
  /** Where it came from, for logs ("state dir /var/lib/weft/ca", "secret weft-system/cacerts"). */
  origin: string;
  signingKey: KeyObject;
  signingCertPem: string;
  /** Certificates between the signing certificate and the root (not the root). */
  intermediatesPem: string[];
  /** The root the signing certificate chains to. */
  rootPem: string;
  /** Other roots to trust (rotation overlap). */
  extraRootsPem: string[];
}

/** Issuance settings. */
export interface CaOptions {
  trustDomain: string;
  /** Lifetime when the request asks for none (default 24 h). */
  defaultTtlMs: number;
  /** Longest lifetime granted. */
  maxTtlMs: number;
}

/** A signed workload certificate. */
export interface IssuedCertificate {
  /** Leaf, then intermediates (PEM each). */
  chain: string[];
  roots: string[];
  /** Serial number (upper-case hex) and validity of the leaf. */
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

/** A certificate's subject on one line ("O=weft, CN=weft root CA"). */
function subject(c: X509Certificate): string {
  return c.subject.replace(/\n/g, ", ");
}

/** Checks CA material: the key fits the certificate, it is a CA, and it chains to the root. */
export function checkMaterial(m: CaMaterial, now = new Date()): X509Certificate {
  const cert = new X509Certificate(m.signingCertPem);
  const root = new X509Certificate(m.rootPem);
  if (!cert.ca) throw new Error(`${m.origin}: signing certificate '${subject(cert)}' is not a CA certificate (basicConstraints CA:TRUE)`);
  if (!root.ca) throw new Error(`${m.origin}: root certificate '${subject(root)}' is not a CA certificate`);
  if (!cert.checkPrivateKey(m.signingKey)) throw new Error(`${m.origin}: the CA key does not belong to the signing certificate`);
  if (new Date(cert.validTo) <= now) throw new Error(`${m.origin}: signing certificate expired on ${cert.validTo}`);
  const chain = [cert, ...m.intermediatesPem.map((p) => new X509Certificate(p)), root];
  for (let i = 0; i < chain.length - 1; i++) {
    const child = chain[i] as X509Certificate;
    const parent = chain[i + 1] as X509Certificate;
    if (!child.checkIssued(parent) || !child.verify(parent.publicKey)) {
      throw new Error(`${m.origin}: '${subject(child)}' is not signed by '${subject(parent)}': the chain to the root is broken`);
    }
  }
  return cert;
}

/** Signs certificates with one set of CA material (replaceable during a root rotation). */
export class CertificateAuthority {
  private material!: CaMaterial;
  private signingCert!: X509Certificate;
  private issuer!: PreparedIssuer;
  /** Certificates issued since start (for status). */
  issued = 0;

  constructor(
    material: CaMaterial,
    readonly opts: CaOptions,
  ) {
    this.replace(material);
  }

  /** Switches to new material (rotation); checks it first. */
  replace(material: CaMaterial): void {
    this.signingCert = checkMaterial(material);
    this.issuer = prepareIssuer(material.signingKey, this.signingCert);
    this.material = material;
  }

  /** Where the material came from. */
  get origin(): string {
    return this.material.origin;
  }

  /** Roots agents trust: the signing root first, then the others. */
  roots(): string[] {
    return [this.material.rootPem, ...this.material.extraRootsPem.filter((p) => p !== this.material.rootPem)];
  }

  /** The trust bundle pushed to agents. */
  trustBundle(): TrustBundle {
    return {
      trustDomain: this.opts.trustDomain,
      rootsPem: this.roots(),
      signingRootSha256: fingerprint256(new X509Certificate(this.material.rootPem)),
    };
  }

  private validity(ttlMs: number): { notBefore: Date; notAfter: Date } {
    const now = Date.now();
    const caEnd = new Date(this.signingCert.validTo).getTime();
    return { notBefore: new Date(now - BACKDATE_MS), notAfter: new Date(Math.min(now + ttlMs, caEnd)) };
  }

  /** Lifetime granted for a requested one (0 = default), capped at the maximum. */
  grantedTtlMs(requestedSeconds: number): number {
    if (!requestedSeconds) return this.opts.defaultTtlMs;
    return Math.min(requestedSeconds * 1000, this.opts.maxTtlMs);
  }

  /** Signs a workload CSR for an identity; throws CsrError when the CSR is not acceptable. */
  signWorkload(csrPem: string, identity: string, ttlSeconds = 0): IssuedCertificate {
    const id = parseSpiffeId(identity);
    if (!id) throw new CsrError("BAD_SAN", `'${identity}' is not a SPIFFE id of the form spiffe://<trust-domain>/ns/<ns>/sa/<sa>`);
    if (id.trustDomain !== this.opts.trustDomain)
      throw new CsrError("BAD_SAN", `identity '${identity}' is not in this mesh's trust domain '${this.opts.trustDomain}'`);
    const info = parseCsr(csrPem);
    checkCsrIdentity(info, identity);
    const signed = signCertificate(
      {
        spki: info.spki,
        subject: {},
        altNames: { uris: [identity] },
        ...this.validity(this.grantedTtlMs(ttlSeconds)),
        isCa: false,
        extKeyUsage: ["serverAuth", "clientAuth"],
      },
      this.issuer,
    );
    this.issued++;
    return {
      chain: [signed.pem, ...this.intermediateChain()],
      roots: this.roots(),
      serial: signed.serial,
      notBefore: signed.notBefore,
      notAfter: signed.notAfter,
    };
  }

  private intermediateChain(): string[] {
    // The signing certificate travels with the leaf unless it is the root itself.
    const self = this.material.signingCertPem.trim() === this.material.rootPem.trim();
    return self ? [] : [this.material.signingCertPem, ...this.material.intermediatesPem];
  }

  /** Issues a TLS serving certificate (and its fresh P-256 key) for the controller. */
  issueServing(dnsNames: string[], ips: string[], ttlMs: number): { certChainPem: string; keyPem: string; notAfter: Date } {
    const keys = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    const signed = signCertificate(
      {
        spki: keys.publicKey.export({ type: "spki", format: "der" }) as Buffer,
        subject: { O: "weft", CN: dnsNames[0] ?? "weft-controller" },
        altNames: { dns: dnsNames, ips },
        ...this.validity(ttlMs),
        isCa: false,
        extKeyUsage: ["serverAuth"],
      },
      this.issuer,
    );
    return {
      certChainPem: [signed.pem, ...this.intermediateChain()].join(""),
      keyPem: keys.privateKey.export({ type: "pkcs8", format: "pem" }) as string,
      notAfter: signed.notAfter,
    };
  }
}

/** Reads a PEM private key, naming the source when it is not one. */
export function readPrivateKey(pem: string, source: string): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch (e) {
    throw new Error(`${source}: not a PEM private key: ${errorMessage(e)}`);
  }
}
