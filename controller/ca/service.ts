/**
 * The Certificates gRPC service with node authorization: an authenticated agent gets a
 * certificate only for an identity that has a pod on its own node, as Istio's CA does for ztunnel.
 */
import { type handleUnaryCall, type ServerUnaryCall, status } from "@grpc/grpc-js";
import { errorMessage } from "../../common/errors.js";
import type { Logger } from "../../common/log.js";
import { CsrError } from "../../common/pki/csr.js";
import { parseSpiffeId } from "../api/model.js";
import type { WireCertificateRequest, WireCertificateResponse } from "../api/wire-types.js";
import type { CertificateAuthority } from "./ca.js";
import { AuthError, bearer, type NodeAuthenticator } from "./node-auth.js";

/** Counters for status. */
export interface CaServiceStats {
  issued: number;
  refused: number;
}

/** A gRPC error with a status code. */
export function grpcError(code: status, message: string): Error & { code: status; details: string } {
  return Object.assign(new Error(message), { code, details: message });
}

/** Handles CreateCertificate. */
export class CaService {
  readonly stats: CaServiceStats = { issued: 0, refused: 0 };

  constructor(
    private readonly ca: () => CertificateAuthority,
    private readonly auth: NodeAuthenticator,
    /** SPIFFE ids with a pod on a node, from the current mesh state. */
    private readonly identitiesOn: (node: string) => ReadonlySet<string>,
    private readonly log: Logger,
  ) {}

  /** The service's method handlers. */
  handlers(): { CreateCertificate: handleUnaryCall<WireCertificateRequest, WireCertificateResponse> } {
    return { CreateCertificate: (call, cb) => void this.create(call, cb) };
  }

  private async create(
    call: ServerUnaryCall<WireCertificateRequest, WireCertificateResponse>,
    cb: (err: Error | null, res?: WireCertificateResponse) => void,
  ): Promise<void> {
    const req = call.request;
    const peer = call.getPeer();
    let node = "";
    try {
      const who = await this.auth.authenticate(bearer(call.metadata));
      node = who.node;
      const id = parseSpiffeId(req.identity ?? "");
      if (!id)
        throw grpcError(
          status.INVALID_ARGUMENT,
          `identity '${req.identity}' is not a SPIFFE id of the form spiffe://<trust-domain>/ns/<ns>/sa/<sa>`,
        );
      if (!this.identitiesOn(node).has(req.identity)) {
        throw new AuthError(
          status.PERMISSION_DENIED,
          `node ${node} has no pod running as ${req.identity}: a node's agent gets certificates only for identities with a pod on that node`,
        );
      }
      const issued = this.ca().signWorkload(req.csrPem ?? "", req.identity, req.ttlSeconds ?? 0);
      this.stats.issued++;
      this.log.info({ node, identity: req.identity, serial: issued.serial, notAfter: issued.notAfter.toISOString() }, "certificate issued");
      cb(null, { certChain: issued.chain, roots: issued.roots });
    } catch (e) {
      this.stats.refused++;
      let err: Error & { code?: status };
      if (e instanceof AuthError) err = grpcError(e.grpcStatus, e.message);
      else if (e instanceof CsrError) err = grpcError(status.INVALID_ARGUMENT, `bad CSR (${e.reason}): ${e.message}`);
      else if (typeof (e as { code?: unknown }).code === "number") err = e as Error & { code: status };
      else err = grpcError(status.INTERNAL, `certificate signing failed: ${errorMessage(e)}`);
      this.log.warn(
        { node: node || undefined, peer, identity: req.identity, code: status[err.code ?? status.INTERNAL] },
        `certificate refused: ${err.message}`,
      );
      cb(err);
    }
  }
}
