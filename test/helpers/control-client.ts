/** Raw gRPC calls to a controller, to look at the wire (responses, status codes) directly. */
import { Client, type ClientDuplexStream, credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { SERVICES, serviceDefinition } from "../../controller/api/proto.js";
import { RESOURCE_KINDS, typeUrlOf } from "../../controller/api/resources.js";
import type { WireCertificateResponse, WireDeltaRequest, WireDeltaResponse } from "../../controller/api/wire-types.js";

function client(target: string, caPem: string): Client {
  // The controller's certificate names "weft-controller"; TLS forbids IPs as SNI.
  return new Client(target, credentials.createSsl(Buffer.from(caPem)), { "grpc.ssl_target_name_override": "weft-controller" });
}

function metadata(token: string | undefined): Metadata {
  const md = new Metadata();
  if (token !== undefined) md.set("authorization", `Bearer ${token}`);
  return md;
}

/** An open DeltaStream and everything received on it. */
export interface RawStream {
  responses: WireDeltaResponse[];
  /** Settles with the stream's final error (status code + details). */
  ended: Promise<ServiceError | null>;
  send(req: Partial<WireDeltaRequest>): void;
  /** Subscribes to every type with a wildcard (and optional initial versions per type). */
  subscribeAll(node: string, initial?: Record<string, Record<string, string>>): void;
  /** ACKs (or NACKs) a response. */
  answer(res: WireDeltaResponse, errors?: { name: string; reason: string }[]): void;
  close(): void;
}

/** Opens a DeltaStream with an optional bearer token. */
export function rawStream(target: string, caPem: string, token: string | undefined): RawStream {
  const c = client(target, caPem);
  const def = serviceDefinition(SERVICES.discovery).DeltaStream as NonNullable<ReturnType<typeof serviceDefinition>[string]>;
  const call: ClientDuplexStream<WireDeltaRequest, WireDeltaResponse> = c.makeBidiStreamRequest(
    def.path,
    def.requestSerialize as (v: WireDeltaRequest) => Buffer,
    def.responseDeserialize as (b: Buffer) => WireDeltaResponse,
    metadata(token),
  );
  const responses: WireDeltaResponse[] = [];
  call.on("data", (r: WireDeltaResponse) => responses.push(r));
  const ended = new Promise<ServiceError | null>((resolve) => {
    call.on("error", (e: ServiceError) => resolve(e));
    call.on("end", () => resolve(null));
  });
  const send = (req: Partial<WireDeltaRequest>) =>
    call.write({
      node: null,
      typeUrl: "",
      subscribe: [],
      unsubscribe: [],
      initialResourceVersions: {},
      responseNonce: "",
      errorDetail: null,
      ...req,
    });
  return {
    responses,
    ended,
    send,
    subscribeAll(node, initial = {}) {
      for (const [i, k] of RESOURCE_KINDS.entries())
        send({
          node: i === 0 ? { name: node, agentVersion: "test" } : null,
          typeUrl: typeUrlOf(k),
          subscribe: ["*"],
          initialResourceVersions: initial[k] ?? {},
        });
    },
    answer(res, errors = []) {
      send({
        typeUrl: res.typeUrl,
        responseNonce: res.nonce,
        errorDetail: errors.length ? { message: "rejected", resources: errors } : null,
      });
    },
    close() {
      call.cancel();
      c.close();
    },
  };
}

/** Calls CreateCertificate; rejects with the ServiceError (code + details) when refused. */
export function rawCsr(
  target: string,
  caPem: string,
  token: string | undefined,
  identity: string,
  csrPem: string,
  ttlSeconds = 0,
): Promise<WireCertificateResponse> {
  const c = client(target, caPem);
  const def = serviceDefinition(SERVICES.certificates).CreateCertificate as NonNullable<ReturnType<typeof serviceDefinition>[string]>;
  return new Promise((resolve, reject) => {
    c.makeUnaryRequest(
      def.path,
      def.requestSerialize as (v: object) => Buffer,
      def.responseDeserialize as (b: Buffer) => WireCertificateResponse,
      { identity, csrPem, ttlSeconds },
      metadata(token),
      (err: ServiceError | null, res?: WireCertificateResponse) => {
        c.close();
        if (err) reject(err);
        else resolve(res as WireCertificateResponse);
      },
    );
  });
}
