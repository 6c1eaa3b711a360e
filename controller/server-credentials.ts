/**
 * gRPC server credentials whose certificate can be replaced while serving (renewal, root
 * rotation): grpc-js watches ServerCredentials and calls setSecureContext on its TLS server.
 * TLS 1.3 only, like every other hop of the mesh.
 */
import { ServerCredentials } from "@grpc/grpc-js";

/** Replaceable TLS server credentials. */
export class RotatingServerCredentials extends ServerCredentials {
  constructor(certChainPem: string, keyPem: string) {
    super({ minVersion: "TLSv1.3" }, { cert: Buffer.from(certChainPem), key: Buffer.from(keyPem) });
  }

  /** Serves a new certificate from now on (existing connections keep theirs). */
  update(certChainPem: string, keyPem: string): void {
    this.updateSecureContextOptions({ cert: Buffer.from(certChainPem), key: Buffer.from(keyPem) });
  }

  /** Each instance is distinct (grpc-js compares credentials when rebinding). */
  override _equals(other: ServerCredentials): boolean {
    return other === this;
  }
}
