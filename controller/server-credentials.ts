/**
 * gRPC server credentials whose certificate can be replaced while serving (renewal, root
 * rotation): grpc-js watches ServerCredentials and calls setSecureContext on its TLS server.
 * TLS 1.3 only, like every other hop of the mesh: the version is part of every context's options,
 * because setSecureContext builds a fresh context from exactly the options it is given (without
 * them OpenSSL's default floor, TLS 1.2, would return on the first renewal).
 */
import { ServerCredentials } from "@grpc/grpc-js";

const TLS13 = { minVersion: "TLSv1.3", maxVersion: "TLSv1.3" } as const;

/** Replaceable TLS server credentials. */
export class RotatingServerCredentials extends ServerCredentials {
  constructor(certChainPem: string, keyPem: string) {
    super({ ...TLS13 }, { ...TLS13, cert: Buffer.from(certChainPem), key: Buffer.from(keyPem) });
  }

  /** Serves a new certificate from now on (existing connections keep theirs). */
  update(certChainPem: string, keyPem: string): void {
    this.updateSecureContextOptions({ ...TLS13, cert: Buffer.from(certChainPem), key: Buffer.from(keyPem) });
  }

  /** Each instance is distinct (grpc-js compares credentials when rebinding). */
  override _equals(other: ServerCredentials): boolean {
    return other === this;
  }
}
