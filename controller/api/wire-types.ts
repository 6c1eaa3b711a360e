/** TypeScript shapes of the weft.xds.v1 messages (xds.proto), as protobufjs encodes and decodes them. */
import type { TracingPolicy } from "./model.js";

/** The agent's node. */
export interface WireNode {
  name: string;
  agentVersion: string;
}

/** One rejected resource of a NACK. */
export interface WireResourceError {
  name: string;
  reason: string;
}

/** Why a response was NACKed. */
export interface WireErrorDetail {
  message: string;
  resources: WireResourceError[];
}

/** Agent → controller. */
export interface WireDeltaRequest {
  node?: WireNode | null;
  typeUrl: string;
  subscribe: string[];
  unsubscribe: string[];
  initialResourceVersions: Record<string, string>;
  responseNonce: string;
  errorDetail?: WireErrorDetail | null;
}

/** One resource: its encoded weft.mesh.v1 message and the hash-based version. */
export interface WireResource {
  name: string;
  version: string;
  body: Uint8Array;
}

/** Controller → agent. */
export interface WireDeltaResponse {
  systemVersionInfo: string;
  typeUrl: string;
  resources: WireResource[];
  removedResources: string[];
  nonce: string;
}

/** CSR for one identity. */
export interface WireCertificateRequest {
  identity: string;
  csrPem: string;
  ttlSeconds: number;
}

/** Signed chain and the roots it verifies against. */
export interface WireCertificateResponse {
  certChain: string[];
  roots: string[];
}

/** The mesh-wide trust roots (weft.mesh.v1.TrustBundle). */
export interface TrustBundle {
  trustDomain: string;
  rootsPem: string[];
  /** SHA-256 (hex, lower case) of the root the CA signs under now. */
  signingRootSha256: string;
}

/** A routing object the controller refused as invalid (weft.mesh.v1.RefusedObject). */
export interface RefusedObject {
  kind: string;
  namespace: string;
  name: string;
  /** Each problem with its field path. */
  errors: string[];
}

/** Mesh-wide settings (weft.mesh.v1.MeshConfig). */
export interface MeshConfig {
  trustDomain: string;
  rootNamespace: string;
  clusterDomain: string;
  /** Routing objects refused as invalid, so that every agent can show why (weft policies). */
  refused?: RefusedObject[];
  /** Tracing settings from Telemetry objects (few, and every proxy may start a trace). */
  tracing?: TracingPolicy[];
}
