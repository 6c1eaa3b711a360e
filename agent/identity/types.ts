/** The identity contract between the agent's identity manager and the proxy. */

/** A workload certificate with its private key (the key never leaves the node). */
export interface WorkloadCertificate {
  /** SPIFFE id in the URI SAN. */
  identity: string;
  /** Leaf first, then intermediates (PEM). */
  certChainPem: string;
  /** PKCS#8 PEM private key (ECDSA P-256). */
  keyPem: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

/** What the proxy asks of the identity manager. */
export interface IdentitySource {
  /** The certificate for a local identity, fetched on first use (concurrent calls share one fetch). */
  certificate(identity: string): Promise<WorkloadCertificate>;
  /** The cached certificate, if held and not expired. */
  cached(identity: string): WorkloadCertificate | undefined;
  /** Trusted root certificates (PEM); during a root rotation both old and new. */
  trustBundle(): readonly string[];
  /** Called after any certificate or the bundle changes. */
  onChange(listener: () => void): () => void;
}
