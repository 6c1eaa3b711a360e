/**
 * TLS for HBONE: TLS 1.3 only, both sides present SPIFFE certificates and verify the peer's chain
 * against the trust bundle. The client names the identity it expects in SNI (as a hash, since a
 * SPIFFE id is not a DNS name); the server presents that identity's certificate, and the client
 * then checks the certificate's URI SAN is exactly the identity it expected.
 */
import { createHash } from "node:crypto";
import { createSecureContext, type PeerCertificate, type SecureContext } from "node:tls";
import type { WorkloadCertificate } from "../identity/types.js";

/** ALPN for HBONE. */
export const HBONE_ALPN = ["h2"];

/** SNI naming an identity: a DNS-safe digest the server maps back through its local identities. */
export function identitySni(identity: string): string {
  const digest = createHash("sha256").update(identity).digest("hex").slice(0, 32);
  return `${digest}.hbone.weft`;
}

/** The single URI SAN of a certificate when it is a SPIFFE id, else null. */
export function spiffeIdOf(cert: Pick<PeerCertificate, "subjectaltname"> | undefined): string | null {
  const san = cert?.subjectaltname;
  if (!san) return null;
  const uris = san
    .split(/,\s*/)
    .filter((s) => s.startsWith("URI:"))
    .map((s) => s.slice(4));
  // SPIFFE: an SVID carries exactly one URI SAN.
  if (uris.length !== 1 || !uris[0]?.startsWith("spiffe://")) return null;
  return uris[0];
}

/** checkServerIdentity for tls.connect: the server must present exactly `expected`. */
export function expectIdentity(expected: string): (host: string, cert: PeerCertificate) => Error | undefined {
  return (_host, cert) => {
    const got = spiffeIdOf(cert);
    if (got === expected) return undefined;
    const err = new Error(`HBONE peer presented identity ${got ?? "(none)"}, expected ${expected}`) as Error & { code: string };
    err.code = "ERR_WEFT_IDENTITY_MISMATCH";
    return err;
  };
}

/**
 * Secure contexts per certificate, rebuilt only when the certificate or the bundle changes:
 * building one parses PEM and costs ~100 µs, too much per connection.
 */
export class ContextCache {
  private readonly contexts = new Map<string, { serial: string; bundle: string; ctx: SecureContext }>();

  /** A context presenting `cert` and trusting `bundle`. */
  get(cert: WorkloadCertificate, bundle: readonly string[]): SecureContext {
    const bundleKey = bundle.join("");
    const hit = this.contexts.get(cert.identity);
    if (hit && hit.serial === cert.serial && hit.bundle === bundleKey) return hit.ctx;
    const ctx = createSecureContext({
      cert: cert.certChainPem,
      key: cert.keyPem,
      ca: [...bundle],
      minVersion: "TLSv1.3",
      maxVersion: "TLSv1.3",
    });
    this.contexts.set(cert.identity, { serial: cert.serial, bundle: bundleKey, ctx });
    return ctx;
  }

  /** Drops contexts of identities no longer held. */
  retain(identities: ReadonlySet<string>): void {
    for (const id of this.contexts.keys()) if (!identities.has(id)) this.contexts.delete(id);
  }
}
