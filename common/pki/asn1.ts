/**
 * ASN.1/DER building blocks for X.509 and PKCS#10 on node-forge's asn1 (forge's pki models only
 * RSA keys; weft's keys are ECDSA P-256). forge works on binary strings; these helpers convert at
 * the edges so the rest of the CA deals in Buffers.
 */
import { createHash } from "node:crypto";
import { isIP } from "node:net";
import { type Asn1, asn1, util } from "./forge-asn1.js";

export type { Asn1 };

/** Object identifiers weft uses. */
export const OID = {
  ecPublicKey: "1.2.840.10045.2.1",
  prime256v1: "1.2.840.10045.3.1.7",
  secp384r1: "1.3.132.0.34",
  rsaEncryption: "1.2.840.113549.1.1.1",
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
  ecdsaWithSha384: "1.2.840.10045.4.3.3",
  ecdsaWithSha512: "1.2.840.10045.4.3.4",
  sha256WithRsa: "1.2.840.113549.1.1.11",
  sha384WithRsa: "1.2.840.113549.1.1.12",
  sha512WithRsa: "1.2.840.113549.1.1.13",
  extensionRequest: "1.2.840.113549.1.9.14",
  commonName: "2.5.4.3",
  organization: "2.5.4.10",
  subjectKeyIdentifier: "2.5.29.14",
  keyUsage: "2.5.29.15",
  subjectAltName: "2.5.29.17",
  basicConstraints: "2.5.29.19",
  authorityKeyIdentifier: "2.5.29.35",
  extKeyUsage: "2.5.29.37",
  serverAuth: "1.3.6.1.5.5.7.3.1",
  clientAuth: "1.3.6.1.5.5.7.3.2",
} as const;

/** Hash and ASN.1 algorithm of each signature OID weft accepts. */
export const SIGNATURE_ALGORITHMS: Readonly<Record<string, { hash: string; key: "ec" | "rsa" }>> = {
  [OID.ecdsaWithSha256]: { hash: "sha256", key: "ec" },
  [OID.ecdsaWithSha384]: { hash: "sha384", key: "ec" },
  [OID.ecdsaWithSha512]: { hash: "sha512", key: "ec" },
  [OID.sha256WithRsa]: { hash: "sha256", key: "rsa" },
  [OID.sha384WithRsa]: { hash: "sha384", key: "rsa" },
  [OID.sha512WithRsa]: { hash: "sha512", key: "rsa" },
};

/** Buffer → forge binary string. */
export function bin(b: Buffer | Uint8Array): string {
  return Buffer.from(b).toString("binary");
}

/** forge binary string → Buffer. */
export function buf(s: string): Buffer {
  return Buffer.from(s, "binary");
}

/** DER encoding of a node. */
export function der(node: Asn1): Buffer {
  return buf(asn1.toDer(node).getBytes());
}

/** Parses DER exactly (bit strings left undecoded, so re-encoding gives the same bytes). */
export function parseDer(bytes: Buffer): Asn1 {
  return (asn1.fromDer as unknown as (b: string, o: object) => Asn1)(bin(bytes), {
    strict: true,
    decodeBitStrings: false,
    parseAllBytes: true,
  });
}

/** SEQUENCE. */
export function seq(items: Asn1[]): Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, items);
}

/** SET. */
export function set(items: Asn1[]): Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SET, true, items);
}

/** OBJECT IDENTIFIER. */
export function oid(id: string): Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(id).getBytes());
}

/** INTEGER from a small number. */
export function int(n: number): Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, asn1.integerToDer(n).getBytes());
}

/** INTEGER from big-endian magnitude bytes (kept positive). */
export function intBytes(b: Buffer): Asn1 {
  const v = b[0] !== undefined && b[0] & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b;
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, bin(v));
}

/** BOOLEAN. */
export function bool(v: boolean): Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BOOLEAN, false, v ? "\xff" : "\x00");
}

/** OCTET STRING. */
export function octets(b: Buffer): Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, bin(b));
}

/** BIT STRING with no unused bits. */
export function bits(b: Buffer): Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, `\x00${bin(b)}`);
}

/** UTCTime before 2050, GeneralizedTime from then on (RFC 5280 4.1.2.5). */
export function time(d: Date): Asn1 {
  const t = new Date(Math.floor(d.getTime() / 1000) * 1000);
  if (t.getUTCFullYear() < 2050) return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.UTCTIME, false, asn1.dateToUtcTime(t));
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(t));
}

/** Explicitly tagged [n] wrapper. */
export function explicit(n: number, inner: Asn1): Asn1 {
  return asn1.create(asn1.Class.CONTEXT_SPECIFIC, n, true, [inner]);
}

/** AlgorithmIdentifier for a signature OID (RSA ones carry NULL parameters). */
export function algorithm(sigOid: string): Asn1 {
  const rsa = SIGNATURE_ALGORITHMS[sigOid]?.key === "rsa";
  return seq(rsa ? [oid(sigOid), asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, "")] : [oid(sigOid)]);
}

/** A Name from ordered attributes (empty = the empty Name SPIFFE SVIDs may use). */
export function name(attrs: { O?: string; CN?: string }): Asn1 {
  const rdns: Asn1[] = [];
  if (attrs.O)
    rdns.push(set([seq([oid(OID.organization), asn1.create(asn1.Class.UNIVERSAL, asn1.Type.UTF8, false, util.encodeUtf8(attrs.O))])]));
  if (attrs.CN)
    rdns.push(set([seq([oid(OID.commonName), asn1.create(asn1.Class.UNIVERSAL, asn1.Type.UTF8, false, util.encodeUtf8(attrs.CN))])]));
  return seq(rdns);
}

/** Subject alternative names to encode. */
export interface AltNames {
  uris?: string[];
  dns?: string[];
  ips?: string[];
}

/** GeneralNames for a SAN extension. */
export function generalNames(alt: AltNames): Asn1 {
  const names: Asn1[] = [];
  for (const u of alt.uris ?? []) names.push(asn1.create(asn1.Class.CONTEXT_SPECIFIC, 6, false, u));
  for (const d of alt.dns ?? []) names.push(asn1.create(asn1.Class.CONTEXT_SPECIFIC, 2, false, d));
  for (const ip of alt.ips ?? []) names.push(asn1.create(asn1.Class.CONTEXT_SPECIFIC, 7, false, bin(ipBytes(ip))));
  return seq(names);
}

/** Network-order bytes of an IP address. */
export function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split(".").map(Number));
  if (isIP(ip) !== 6) throw new Error(`'${ip}' is not an IP address`);
  const [head, tail] = ip.split("::") as [string, string | undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  return Buffer.concat(groups.map((g) => Buffer.from(g.padStart(4, "0"), "hex")));
}

/** One extension: extnID, critical, extnValue (the DER of value). */
export function extension(id: string, critical: boolean, value: Asn1): Asn1 {
  const parts = [oid(id)];
  if (critical) parts.push(bool(true));
  parts.push(octets(der(value)));
  return seq(parts);
}

/** The subjectPublicKey bits of a SubjectPublicKeyInfo (what key identifiers hash). */
export function spkiKeyBits(spki: Buffer): Buffer {
  const node = parseDer(spki);
  const bitString = (node.value as Asn1[])[1] as Asn1;
  return buf(bitString.value as string).subarray(1);
}

/** RFC 5280 method 1 key identifier: SHA-1 of the subjectPublicKey bits. */
export function keyIdentifier(spki: Buffer): Buffer {
  return createHash("sha1").update(spkiKeyBits(spki)).digest();
}

/** The exact bytes of each element of a DER SEQUENCE (signatures cover the original bytes). */
export function sequenceElements(bytes: Buffer): Buffer[] {
  const read = (b: Buffer, off: number): { header: number; len: number } => {
    let p = off + 1;
    const first = b[p++];
    if (first === undefined) throw new Error("truncated DER");
    let len = first;
    if (first & 0x80) {
      const n = first & 0x7f;
      if (n === 0 || n > 4) throw new Error("unsupported DER length");
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + (b[p++] ?? 0);
    }
    return { header: p - off, len };
  };
  if (bytes[0] !== 0x30) throw new Error("not a DER SEQUENCE");
  const outer = read(bytes, 0);
  if (outer.header + outer.len !== bytes.length) throw new Error("DER SEQUENCE length does not match the data");
  const out: Buffer[] = [];
  let off = outer.header;
  while (off < bytes.length) {
    const el = read(bytes, off);
    const end = off + el.header + el.len;
    if (end > bytes.length) throw new Error("truncated DER element");
    out.push(bytes.subarray(off, end));
    off = end;
  }
  return out;
}
