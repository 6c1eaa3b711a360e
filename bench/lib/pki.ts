/**
 * Throwaway certificates for the HAProxy baseline, made with openssl: a private CA and one
 * ECDSA P-256 leaf per node (the key type ztunnel and weft use), each good for client and
 * server auth, valid two days. Keys never leave the bench's private temp directory.
 */
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { run } from "../../native/exec.js";

/** One node's identity: cert, key, and the two concatenated (what haproxy's `crt` wants). */
export interface LeafFiles {
  cert: string;
  key: string;
  pem: string;
}

/** Makes a P-256 CA in dir; returns its cert and key paths. */
export async function makeCa(dir: string, commonName: string): Promise<{ cert: string; key: string }> {
  const key = join(dir, "ca.key");
  const cert = join(dir, "ca.crt");
  await genP256(key);
  await run("openssl", [
    "req",
    "-x509",
    "-new",
    "-key",
    key,
    "-sha256",
    "-days",
    "2",
    "-subj",
    `/CN=${commonName}`,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
    "-out",
    cert,
  ]);
  return { cert, key };
}

/** Makes a P-256 leaf signed by the CA, with a DNS SAN (and an IP SAN when given). */
export async function makeLeaf(dir: string, ca: { cert: string; key: string }, name: string, ip?: string): Promise<LeafFiles> {
  if (!/^[a-z0-9.-]+$/.test(name)) throw new Error(`certificate name '${name}': use lowercase letters, digits, '.' and '-'`);
  const base = join(dir, name);
  const key = `${base}.key`;
  const csr = `${base}.csr`;
  const cert = `${base}.crt`;
  const ext = `${base}.ext`;
  await genP256(key);
  await run("openssl", ["req", "-new", "-key", key, "-subj", `/CN=${name}`, "-out", csr]);
  writeFileSync(
    ext,
    [
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature",
      "extendedKeyUsage=serverAuth,clientAuth",
      `subjectAltName=DNS:${name}${ip ? `,IP:${ip}` : ""}`,
      "",
    ].join("\n"),
  );
  await run("openssl", [
    "x509",
    "-req",
    "-in",
    csr,
    "-CA",
    ca.cert,
    "-CAkey",
    ca.key,
    "-set_serial",
    `0x${randomBytes(16).toString("hex")}`,
    "-sha256",
    "-days",
    "2",
    "-extfile",
    ext,
    "-out",
    cert,
  ]);
  const pem = `${base}.pem`;
  writeFileSync(pem, readFileSync(cert, "utf8") + readFileSync(key, "utf8"), { mode: 0o600 });
  return { cert, key, pem };
}

/** What `openssl s_client -brief` reports about a finished handshake. */
export interface HandshakeFacts {
  protocol: string;
  cipher: string;
  /** Signature type of the peer ("ECDSA"), when printed. */
  peerSignature?: string;
  verified: boolean;
}

/** Parses `openssl s_client -brief` output (it goes to stderr); throws when no handshake finished. */
export function parseSClientBrief(text: string): HandshakeFacts {
  const protocol = /^Protocol version:\s*(\S+)/m.exec(text)?.[1];
  const cipher = /^Ciphersuite:\s*(\S+)/m.exec(text)?.[1];
  if (!protocol || !cipher)
    throw new Error(`TLS handshake did not complete: ${text.trim().split("\n").slice(-3).join(" | ") || "(no output)"}`);
  const facts: HandshakeFacts = { protocol, cipher, verified: /^Verification:\s*OK\s*$/m.test(text) };
  const sig = /^Peer signature type:\s*(\S+)/m.exec(text)?.[1] ?? /^Signature type:\s*(\S+)/m.exec(text)?.[1];
  if (sig) facts.peerSignature = sig;
  return facts;
}

async function genP256(keyPath: string): Promise<void> {
  await run("openssl", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", keyPath]);
}
