/**
 * Building X.509 certificates: the TBSCertificate is assembled with forge.asn1, and signed by
 * Node's crypto (OpenSSL) with the CA's key, ECDSA or RSA. Pure JS signing (forge's cert.sign)
 * is ~100× slower; see bench/cert-issuance.ts.
 */
import { createPublicKey, type KeyObject, randomBytes, sign, X509Certificate } from "node:crypto";
import {
  type AltNames,
  algorithm,
  bits,
  bool,
  der,
  explicit,
  extension,
  generalNames,
  int,
  intBytes,
  keyIdentifier,
  name,
  OID,
  octets,
  oid,
  parseDer,
  seq,
  sequenceElements,
  time,
} from "./asn1.js";

/** Signature algorithm OID and hash for a signing key. */
export function signatureAlgorithmFor(key: KeyObject): { oid: string; hash: string } {
  if (key.asymmetricKeyType === "ec") {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === "prime256v1") return { oid: OID.ecdsaWithSha256, hash: "sha256" };
    if (curve === "secp384r1") return { oid: OID.ecdsaWithSha384, hash: "sha384" };
    if (curve === "secp521r1") return { oid: OID.ecdsaWithSha512, hash: "sha512" };
    throw new Error(`CA key on curve ${curve} is not supported (use P-256, P-384 or P-521)`);
  }
  if (key.asymmetricKeyType === "rsa") return { oid: OID.sha256WithRsa, hash: "sha256" };
  throw new Error(`CA key type ${key.asymmetricKeyType} is not supported (use ECDSA or RSA)`);
}

/** The signer of a certificate: its key, and (unless self-signed) its certificate. */
export interface Issuer {
  key: KeyObject;
  /** Absent: self-signed (the subject is the issuer). */
  cert?: X509Certificate;
}

/** What signing under an issuer needs, worked out once per CA rather than per certificate. */
export interface PreparedIssuer {
  key: KeyObject;
  alg: { oid: string; hash: string };
  /** DER of the issuer's subject Name (copied into every certificate it signs). */
  nameDer: Buffer;
  /** Key identifier of the issuer's public key (authorityKeyIdentifier). */
  keyId: Buffer;
}

/** Prepares a CA certificate and key for signing many certificates. */
export function prepareIssuer(key: KeyObject, cert: X509Certificate): PreparedIssuer {
  return {
    key,
    alg: signatureAlgorithmFor(key),
    nameDer: subjectNameDer(cert),
    keyId: keyIdentifier(cert.publicKey.export({ type: "spki", format: "der" }) as Buffer),
  };
}

/** A signed certificate: PEM, and what callers log without parsing it again. */
export interface SignedCertificate {
  pem: string;
  /** Serial number, upper-case hex. */
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

/** What to put in a certificate. */
export interface CertificateTemplate {
  /** The subject's public key (DER SubjectPublicKeyInfo). */
  spki: Buffer;
  subject: { O?: string; CN?: string };
  altNames?: AltNames;
  notBefore: Date;
  notAfter: Date;
  /** A CA certificate (keyCertSign) or a leaf (digitalSignature, keyEncipherment). */
  isCa: boolean;
  extKeyUsage?: ("serverAuth" | "clientAuth")[];
}

/** Subject Name DER of a certificate (copied byte for byte as the issuer of what it signs). */
export function subjectNameDer(cert: X509Certificate): Buffer {
  const [tbs] = sequenceElements(cert.raw);
  const fields = sequenceElements(tbs as Buffer);
  // [0] version, serial, signature, issuer, validity, subject, …
  const offset = fields[0]?.[0] === 0xa0 ? 1 : 0;
  return fields[4 + offset] as Buffer;
}

/** Issues (signs) a certificate; returns its PEM and parsed form. */
export function issueCertificate(t: CertificateTemplate, issuer: Issuer): { pem: string; cert: X509Certificate } {
  const prepared: PreparedIssuer = issuer.cert
    ? prepareIssuer(issuer.key, issuer.cert)
    : {
        key: issuer.key,
        alg: signatureAlgorithmFor(issuer.key),
        nameDer: der(name(t.subject)),
        keyId: keyIdentifier(createPublicKey(issuer.key).export({ type: "spki", format: "der" }) as Buffer),
      };
  const signed = signCertificate(t, prepared, !issuer.cert);
  return { pem: signed.pem, cert: new X509Certificate(signed.pem) };
}

/** Signs a certificate with a prepared issuer (the CA's hot path: no parsing, one signature). */
export function signCertificate(t: CertificateTemplate, issuer: PreparedIssuer, selfSigned = false): SignedCertificate {
  const subjectName = name(t.subject);
  const emptySubject = !t.subject.O && !t.subject.CN;
  const exts = [
    extension(OID.basicConstraints, true, seq(t.isCa ? [bool(true)] : [])),
    // keyUsage bits: CA = keyCertSign | cRLSign | digitalSignature; leaf = digitalSignature | keyEncipherment.
    extension(OID.keyUsage, true, t.isCa ? bitString(Buffer.from([0x86]), 1) : bitString(Buffer.from([0xa0]), 5)),
    extension(OID.subjectKeyIdentifier, false, octets(keyIdentifier(t.spki))),
  ];
  if (!selfSigned || !t.isCa) exts.push(extension(OID.authorityKeyIdentifier, false, seq([contextPrimitive(0, issuer.keyId)])));
  if (t.extKeyUsage?.length) {
    exts.push(extension(OID.extKeyUsage, false, seq(t.extKeyUsage.map((u) => oid(u === "serverAuth" ? OID.serverAuth : OID.clientAuth)))));
  }
  const alt = t.altNames;
  if (alt && (alt.uris?.length ?? 0) + (alt.dns?.length ?? 0) + (alt.ips?.length ?? 0) > 0) {
    // RFC 5280: with an empty subject the SAN extension must be critical.
    exts.push(extension(OID.subjectAltName, emptySubject, generalNames(alt)));
  }
  const serial = randomBytes(16);
  serial[0] = ((serial[0] as number) & 0x7f) | 0x10; // positive, and 16 bytes without a leading zero
  const notBefore = new Date(Math.floor(t.notBefore.getTime() / 1000) * 1000);
  const notAfter = new Date(Math.floor(t.notAfter.getTime() / 1000) * 1000);
  const tbs = seq([
    explicit(0, int(2)),
    intBytes(serial),
    algorithm(issuer.alg.oid),
    selfSigned ? subjectName : parseDer(issuer.nameDer),
    seq([time(notBefore), time(notAfter)]),
    subjectName,
    parseDer(t.spki),
    explicit(3, seq(exts)),
  ]);
  const tbsDer = der(tbs);
  const signature = sign(issuer.alg.hash, tbsDer, issuer.key);
  const certDer = der(seq([parseDer(tbsDer), algorithm(issuer.alg.oid), bits(signature)]));
  return { pem: toPem(certDer, "CERTIFICATE"), serial: serial.toString("hex").toUpperCase(), notBefore, notAfter };
}

function bitString(b: Buffer, unused: number): ReturnType<typeof bits> {
  const node = bits(b);
  node.value = String.fromCharCode(unused) + (node.value as string).slice(1);
  return node;
}

function contextPrimitive(tag: number, b: Buffer): ReturnType<typeof octets> {
  const node = octets(b);
  node.tagClass = 0x80;
  node.type = tag;
  return node;
}

/** DER → PEM with the given label. */
export function toPem(derBytes: Buffer, label: string): string {
  const b64 = derBytes.toString("base64").replace(/(.{64})/g, "$1\n");
  return `-----BEGIN ${label}-----\n${b64}${b64.endsWith("\n") ? "" : "\n"}-----END ${label}-----\n`;
}

/** Splits concatenated PEM certificates. */
export function splitPemCertificates(text: string): string[] {
  return (
    text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g)?.map((c) => (c.endsWith("\n") ? c : `${c}\n`)) ?? []
  );
}

/** SHA-256 fingerprint of a certificate as lower-case hex. */
export function fingerprint256(cert: X509Certificate): string {
  return cert.fingerprint256.replace(/:/g, "").toLowerCase();
}

/** URI SANs of a certificate. */
export function uriSans(cert: X509Certificate): string[] {
  return (cert.subjectAltName ?? "")
    .split(", ")
    .filter((s) => s.startsWith("URI:"))
    .map((s) => s.slice(4));
}
