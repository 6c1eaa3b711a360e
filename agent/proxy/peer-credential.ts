/**
 * What authenticated a TLS session, kept for its whole life: the peer's SPIFFE id (in this trust
 * domain only), when its certificate expires, and the top of its chain, so a session can be
 * drained when that certificate expires or the root that vouched for it leaves the trust bundle.
 */
import { X509Certificate } from "node:crypto";
import type { DetailedPeerCertificate, TLSSocket } from "node:tls";
import { parseSpiffeId } from "../../controller/api/model.js";
import { spiffeIdOf } from "./tls.js";

/** The only protocol any mesh hop speaks. */
export const MESH_TLS_VERSION = "TLSv1.3";

/** An authenticated peer. */
export interface PeerCredential {
  identity: string;
  /** The peer certificate's notAfter (ms since epoch). */
  notAfter: number;
  /** The highest certificate of the peer's chain below a self-signed root (re-checked against new bundles). */
  top: X509Certificate;
}

/** The peer of a TLS session, or the reason it is not acceptable (fails closed on anything odd). */
export function peerCredential(socket: TLSSocket, trustDomain: string): PeerCredential | { refused: string } {
  if (!socket.authorized) return { refused: `peer certificate not verified (${String(socket.authorizationError ?? "no certificate")})` };
  const protocol = socket.getProtocol?.();
  if (protocol !== MESH_TLS_VERSION)
    return { refused: `peer negotiated ${protocol ?? "no protocol"}, only ${MESH_TLS_VERSION} is accepted` };
  const cert = socket.getPeerCertificate(true) as DetailedPeerCertificate | undefined;
  const identity = spiffeIdOf(cert);
  if (!cert || !identity) return { refused: "peer certificate carries no single SPIFFE URI SAN" };
  const parsed = parseSpiffeId(identity);
  if (!parsed || parsed.trustDomain !== trustDomain)
    return { refused: `peer identity ${identity} is not spiffe://${trustDomain}/ns/<namespace>/sa/<serviceaccount>` };
  // An SVID is a leaf (SPIFFE X.509-SVID §4.1): a CA certificate presented as one is refused even
  // when the bundle's root signed it, as it could sign identities of its own.
  if (new X509Certificate(cert.raw).ca) return { refused: `peer certificate for ${identity} is a CA certificate, not a workload's` };
  const notAfter = Date.parse(cert.valid_to);
  if (!Number.isFinite(notAfter)) return { refused: "peer certificate has no readable notAfter" };
  let top = cert;
  // Node links each certificate to its issuer and a self-signed root to itself.
  for (let i = 0; i < 10 && top.issuerCertificate && top.issuerCertificate !== top; i++) {
    if (top.issuerCertificate.fingerprint256 === top.fingerprint256) break;
    if (isSelfSigned(top.issuerCertificate)) break;
    top = top.issuerCertificate;
  }
  return { identity, notAfter, top: new X509Certificate(top.raw) };
}

function isSelfSigned(c: DetailedPeerCertificate): boolean {
  return c.issuerCertificate === c || c.issuerCertificate?.fingerprint256 === c.fingerprint256;
}

/** Parsed roots of a trust bundle, to re-check live sessions after the bundle changes. */
export function parseBundle(bundle: readonly string[]): X509Certificate[] {
  const out: X509Certificate[] = [];
  for (const pem of bundle) {
    try {
      out.push(new X509Certificate(pem));
    } catch {
      // An unreadable root trusts nothing.
    }
  }
  return out;
}

/** True when one of the roots issued (and signed) `top`: the session's chain is still trusted. */
export function stillTrusted(top: X509Certificate, roots: readonly X509Certificate[]): boolean {
  return roots.some((r) => {
    if (r.fingerprint256 === top.fingerprint256) return true;
    try {
      return top.checkIssued(r) && top.verify(r.publicKey);
    } catch {
      return false;
    }
  });
}

const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Calls onExpire when the credential expires (re-armed past setTimeout's range). Returns a
 * cancel function. The timer does not keep the process alive.
 */
export function onCredentialExpiry(notAfter: number, onExpire: () => void): () => void {
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    const left = notAfter - Date.now();
    if (left <= 0) {
      timer = undefined;
      onExpire();
      return;
    }
    timer = setTimeout(arm, Math.min(left, MAX_TIMER_MS));
    timer.unref();
  };
  arm();
  return () => {
    if (timer) clearTimeout(timer);
  };
}
