/**
 * Who signs the agent's CSRs: the controller's CA over gRPC (authenticated with the node
 * credential), or in local-file mode an in-process CA whose root the operator shares.
 */
import type { Client, ServiceError } from "@grpc/grpc-js";
import { SERVICES, serviceDefinition } from "../../controller/api/proto.js";
import type { WireCertificateRequest, WireCertificateResponse } from "../../controller/api/wire-types.js";
import type { CertificateAuthority } from "../../controller/embedded.js";
import { authMetadata, type ControllerEndpoint, controllerClient } from "../xds/channel.js";

/** A signed chain and the roots it verifies against. */
export interface IssuedChain {
  chain: string[];
  roots: string[];
}

/** Signs a CSR for one identity. */
export interface CertificateIssuer {
  issue(identity: string, csrPem: string, ttlSeconds: number): Promise<IssuedChain>;
  close(): void;
}

/** The controller's Certificates service. */
export class GrpcIssuer implements CertificateIssuer {
  private client: Client | undefined;
  private readonly def = serviceDefinition(SERVICES.certificates).CreateCertificate as NonNullable<
    ReturnType<typeof serviceDefinition>[string]
  >;

  constructor(
    private readonly endpoint: ControllerEndpoint,
    private readonly timeoutMs = 10_000,
  ) {}

  /** Sends the CSR; rejects with the controller's reason when refused. */
  issue(identity: string, csrPem: string, ttlSeconds: number): Promise<IssuedChain> {
    // A fresh client when the roots may have changed (rotation) is cheap; reuse otherwise.
    this.client ??= controllerClient(this.endpoint);
    const client = this.client;
    const md = authMetadata(this.endpoint);
    return new Promise((resolve, reject) => {
      client.makeUnaryRequest<WireCertificateRequest, WireCertificateResponse>(
        this.def.path,
        this.def.requestSerialize as (v: WireCertificateRequest) => Buffer,
        this.def.responseDeserialize as (b: Buffer) => WireCertificateResponse,
        { identity, csrPem, ttlSeconds },
        md,
        { deadline: Date.now() + this.timeoutMs },
        (err: ServiceError | null, res?: WireCertificateResponse) => {
          if (err) {
            // A broken channel is rebuilt on the next call (with the roots known then).
            if (err.code === 14) this.close();
            reject(new Error(err.details || err.message));
          } else resolve({ chain: res?.certChain ?? [], roots: res?.roots ?? [] });
        },
      );
    });
  }

  /** Closes the channel. */
  close(): void {
    this.client?.close();
    this.client = undefined;
  }
}

/** An in-process CA (local-file mode: no controller). */
export class LocalIssuer implements CertificateIssuer {
  constructor(private readonly ca: CertificateAuthority) {}

  /** Signs locally. */
  async issue(identity: string, csrPem: string, ttlSeconds: number): Promise<IssuedChain> {
    const r = this.ca.signWorkload(csrPem, identity, ttlSeconds);
    return { chain: r.chain, roots: r.roots };
  }

  /** Nothing to close. */
  close(): void {}
}
