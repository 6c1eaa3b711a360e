/**
 * The node's workload certificates and keys, saved so a cold start presents them before the CA
 * answers. On load each is checked as if the CA had just returned it (its SPIFFE id, its key,
 * still valid); one that fails is left out and simply requested again.
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { errorMessage } from "../../common/errors.js";
import { uriSans } from "../../common/pki/x509.js";
import type { HeldCertificate } from "../identity/manager.js";
import { readIfExists, writeAtomic } from "./state-dir.js";

/** File name in the state directory (0600: it holds private keys). */
export const CERTS_FILE = "certificates.json";
const FORMAT = 1;

interface SavedCert {
  identity: string;
  certChainPem: string;
  keyPem: string;
  signedBy: string;
}

/** Saves the certificates. */
export function saveCerts(dir: string, node: string, held: readonly HeldCertificate[]): void {
  const certificates: SavedCert[] = held.map((h) => ({
    identity: h.cert.identity,
    certChainPem: h.cert.certChainPem,
    keyPem: h.cert.keyPem,
    signedBy: h.signedBy,
  }));
  writeAtomic(dir, CERTS_FILE, JSON.stringify({ format: FORMAT, node, certificates }));
}

/** What loading found: the usable certificates and why the others were left out. */
export interface LoadedCerts {
  certificates: HeldCertificate[];
  skipped: string[];
}

/** The saved certificates that are still usable at `now`; throws when the file itself is unusable. */
export function parseCerts(text: string, node: string, now = Date.now()): LoadedCerts {
  let saved: { format?: number; node?: string; certificates?: SavedCert[] };
  try {
    saved = JSON.parse(text) as typeof saved;
  } catch (e) {
    throw new Error(`not JSON: ${errorMessage(e)}`);
  }
  if (saved?.format !== FORMAT) throw new Error(`format ${String(saved?.format)} is not ${FORMAT}`);
  if (saved.node !== node) throw new Error(`saved for node '${saved.node}', not '${node}'`);
  const out: LoadedCerts = { certificates: [], skipped: [] };
  for (const [i, c] of (Array.isArray(saved.certificates) ? saved.certificates : []).entries()) {
    try {
      const leaf = new X509Certificate(c.certChainPem);
      if (!uriSans(leaf).includes(c.identity)) throw new Error(`the certificate is not for ${c.identity}`);
      if (!leaf.checkPrivateKey(createPrivateKey(c.keyPem))) throw new Error("the key does not match the certificate");
      const notAfter = new Date(leaf.validTo);
      if (notAfter.getTime() <= now) throw new Error(`expired at ${notAfter.toISOString()}`);
      out.certificates.push({
        signedBy: String(c.signedBy ?? ""),
        cert: {
          identity: c.identity,
          certChainPem: c.certChainPem,
          keyPem: c.keyPem,
          serial: leaf.serialNumber,
          notBefore: new Date(leaf.validFrom),
          notAfter,
        },
      });
    } catch (e) {
      out.skipped.push(`certificates[${i}] (${String(c?.identity)}): ${errorMessage(e)}`);
    }
  }
  return out;
}

/** Reads dir's certificates: null when there are none saved. */
export function loadCerts(dir: string, node: string): LoadedCerts | null {
  const text = readIfExists(dir, CERTS_FILE);
  return text === null ? null : parseCerts(text, node);
}
