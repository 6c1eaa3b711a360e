/**
 * PKCS#10 certificate signing requests, built on the agent (the private key never leaves the
 * node) and checked by the CA: structure, signature, key strength, and the SAN it asks for.
 */
import { createPublicKey, type KeyObject, sign, verify } from "node:crypto";
import { errorMessage, WeftError } from "../errors.js";
import {
  type Asn1,
  algorithm,
  bits,
  buf,
  der,
  extension,
  generalNames,
  int,
  name,
  OID,
  oid,
  parseDer,
  SIGNATURE_ALGORITHMS,
  seq,
  sequenceElements,
  set,
} from "./asn1.js";
import { asn1 } from "./forge-asn1.js";
import { toPem } from "./x509.js";

/** Largest CSR the CA reads. */
export const MAX_CSR_BYTES = 16 * 1024;

/** Why a CSR was refused; code is stable for callers and tests. */
export class CsrError extends WeftError {
  override readonly name = "CsrError";
  constructor(
    /** Why, for the CA's logs and the refused agent. */
    readonly reason: "MALFORMED" | "BAD_SIGNATURE" | "WEAK_KEY" | "BAD_SAN" | "UNSUPPORTED_ALGORITHM",
    message: string,
  ) {
    super("WEFT_CERTIFICATE", message);
  }
}

/** Builds a CSR for a SPIFFE id, signed by the key pair (ECDSA P-256 for workloads). */
export function createCsr(identity: string, keys: { privateKey: KeyObject; publicKey: KeyObject }): string {
  const spki = keys.publicKey.export({ type: "spki", format: "der" }) as Buffer;
  const san = extension(OID.subjectAltName, true, generalNames({ uris: [identity] }));
  const attributes = asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [seq([oid(OID.extensionRequest), set([seq([san])])])]);
  const cri = der(seq([int(0), name({}), parseDer(spki), attributes]));
  const isEc = keys.privateKey.asymmetricKeyType === "ec";
  const sigOid = isEc ? OID.ecdsaWithSha256 : OID.sha256WithRsa;
  const signature = sign("sha256", cri, keys.privateKey);
  return toPem(der(seq([parseDer(cri), algorithm(sigOid), bits(signature)])), "CERTIFICATE REQUEST");
}

/** What a valid CSR carries. */
export interface CsrInfo {
  /** SubjectPublicKeyInfo DER (what the certificate will certify). */
  spki: Buffer;
  publicKey: KeyObject;
  uris: string[];
  dns: string[];
  ips: number;
  /** Other GeneralName types present (email, directory names…). */
  otherNames: number;
}

function pemToDer(pem: string): Buffer {
  if (pem.length > MAX_CSR_BYTES * 2) throw new CsrError("MALFORMED", `CSR is larger than ${MAX_CSR_BYTES} bytes`);
  const m = /-----BEGIN (?:NEW )?CERTIFICATE REQUEST-----([\s\S]+?)-----END (?:NEW )?CERTIFICATE REQUEST-----/.exec(pem);
  if (!m) throw new CsrError("MALFORMED", "not a PEM certificate request (no BEGIN CERTIFICATE REQUEST block)");
  const b = Buffer.from((m[1] as string).replace(/\s+/g, ""), "base64");
  if (b.length === 0 || b.length > MAX_CSR_BYTES) throw new CsrError("MALFORMED", "CSR body is empty or too large");
  return b;
}

function b64u(b: Buffer): string {
  return b.toString("base64url");
}

/**
 * The CSR's public key as a KeyObject. P-256 and RSA keys are imported as JWK, built from the
 * SPKI fields: OpenSSL 3's DER decoders cost ~2.5× more, and the CA does this for every CSR.
 * Anything else goes through the DER decoder (and is then refused by the key policy).
 */
function publicKeyFromSpki(spkiNode: Asn1, spkiDer: Buffer): KeyObject {
  try {
    const [alg, bitsNode] = spkiNode.value as Asn1[];
    const [algOid, params] = (alg as Asn1).value as Asn1[];
    const algorithmOid = asn1.derToOid((algOid as Asn1).value as string);
    const keyBits = buf((bitsNode as Asn1).value as string).subarray(1);
    if (
      algorithmOid === OID.ecPublicKey &&
      params &&
      asn1.derToOid(params.value as string) === OID.prime256v1 &&
      keyBits.length === 65 &&
      keyBits[0] === 4
    ) {
      return createPublicKey({
        key: { kty: "EC", crv: "P-256", x: b64u(keyBits.subarray(1, 33)), y: b64u(keyBits.subarray(33)) },
        format: "jwk",
      });
    }
    if (algorithmOid === OID.rsaEncryption) {
      const [n, e] = parseDer(keyBits).value as Asn1[];
      const modulus = buf((n as Asn1).value as string);
      return createPublicKey({
        key: { kty: "RSA", n: b64u(modulus[0] === 0 ? modulus.subarray(1) : modulus), e: b64u(buf((e as Asn1).value as string)) },
        format: "jwk",
      });
    }
  } catch {
    // not the shape expected: let OpenSSL's decoder have a go
  }
  return createPublicKey({ key: spkiDer, format: "der", type: "spki" });
}

function checkKey(key: KeyObject): void {
  const t = key.asymmetricKeyType;
  if (t === "ec") {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve !== "prime256v1") throw new CsrError("WEAK_KEY", `EC key on curve ${curve ?? "unknown"} is not accepted: use ECDSA P-256`);
    return;
  }
  if (t === "rsa") {
    const bitsLen = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bitsLen < 2048) throw new CsrError("WEAK_KEY", `RSA key of ${bitsLen} bits is too weak: at least 2048 bits (or ECDSA P-256)`);
    return;
  }
  throw new CsrError("WEAK_KEY", `key type ${t ?? "unknown"} is not accepted: use ECDSA P-256 or RSA >= 2048`);
}

function sanFromAttributes(attrs: Asn1): Asn1 | undefined {
  for (const attr of attrs.value as Asn1[]) {
    const [type, values] = attr.value as Asn1[];
    if (!type || asn1.derToOid(type.value as string) !== OID.extensionRequest) continue;
    const exts = ((values?.value as Asn1[])[0]?.value as Asn1[]) ?? [];
    for (const ext of exts) {
      const parts = ext.value as Asn1[];
      if (asn1.derToOid((parts[0] as Asn1).value as string) !== OID.subjectAltName) continue;
      const octetString = parts[parts.length - 1] as Asn1;
      return parseDer(buf(octetString.value as string));
    }
  }
  return undefined;
}

/** Parses a PEM CSR and checks its signature and key; throws CsrError saying what is wrong. */
export function parseCsr(pem: string): CsrInfo {
  const bytes = pemToDer(pem);
  let cri: Buffer;
  let criNode: Asn1;
  let sigOid: string;
  let signature: Buffer;
  try {
    const [criRaw, algRaw, sigRaw] = sequenceElements(bytes);
    if (!criRaw || !algRaw || !sigRaw) throw new Error("expected request info, algorithm and signature");
    cri = criRaw;
    criNode = parseDer(cri);
    sigOid = asn1.derToOid(((parseDer(algRaw).value as Asn1[])[0] as Asn1).value as string);
    const sigBits = buf(parseDer(sigRaw).value as string);
    if (sigBits[0] !== 0) throw new Error("signature bit string has unused bits");
    signature = sigBits.subarray(1);
  } catch (e) {
    if (e instanceof CsrError) throw e;
    throw new CsrError("MALFORMED", `CSR is not valid DER PKCS#10: ${errorMessage(e)}`);
  }
  const fields = criNode.value as Asn1[];
  const spkiNode = fields[2];
  if (fields.length < 3 || !spkiNode) throw new CsrError("MALFORMED", "CSR request info lacks a subject public key");
  const spki = der(spkiNode);
  let publicKey: KeyObject;
  try {
    publicKey = publicKeyFromSpki(spkiNode, spki);
  } catch (e) {
    throw new CsrError("MALFORMED", `CSR public key cannot be read: ${errorMessage(e)}`);
  }
  checkKey(publicKey);
  const alg = SIGNATURE_ALGORITHMS[sigOid];
  if (!alg)
    throw new CsrError(
      "UNSUPPORTED_ALGORITHM",
      `signature algorithm ${sigOid} is not accepted (use ECDSA or RSA with SHA-256 or stronger)`,
    );
  if (alg.key !== publicKey.asymmetricKeyType)
    throw new CsrError("UNSUPPORTED_ALGORITHM", `signature algorithm ${sigOid} does not fit a ${publicKey.asymmetricKeyType} key`);
  if (!verify(alg.hash, cri, publicKey, signature))
    throw new CsrError("BAD_SIGNATURE", "CSR signature does not verify against its own public key");
  const info: CsrInfo = { spki, publicKey, uris: [], dns: [], ips: 0, otherNames: 0 };
  const attrs = fields[3];
  const san = attrs ? sanFromAttributes(attrs) : undefined;
  for (const gn of (san?.value as Asn1[]) ?? []) {
    if (gn.tagClass !== asn1.Class.CONTEXT_SPECIFIC) info.otherNames++;
    else if (gn.type === 6) info.uris.push(gn.value as string);
    else if (gn.type === 2) info.dns.push(gn.value as string);
    else if (gn.type === 7) info.ips++;
    else info.otherNames++;
  }
  return info;
}

/** Checks that a CSR asks for exactly one identity and nothing else. */
export function checkCsrIdentity(info: CsrInfo, identity: string): void {
  if (info.uris.length !== 1) {
    throw new CsrError(
      "BAD_SAN",
      `CSR must carry exactly one URI SAN (the SPIFFE id); it has ${info.uris.length}${info.uris.length ? ` (${info.uris.join(", ")})` : ""}`,
    );
  }
  if (info.uris[0] !== identity)
    throw new CsrError("BAD_SAN", `CSR's URI SAN '${info.uris[0]}' is not the requested identity '${identity}'`);
  if (info.dns.length || info.ips || info.otherNames) {
    throw new CsrError("BAD_SAN", "CSR carries DNS, IP or other SANs; workload certificates carry only the SPIFFE id");
  }
}
