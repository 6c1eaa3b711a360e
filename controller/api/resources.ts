/**
 * The resource types of the control protocol: their type URLs, names, push order, and how each
 * model value is encoded into (and decoded, validated, from) its weft.mesh.v1 message.
 */

import { errorMessage } from "../../common/errors.js";
import type {
  AuthorizationPolicy,
  DestinationPolicy,
  PeerAuthentication,
  RateLimitPolicy,
  RequestAuthentication,
  RouteTable,
  Service,
  Workload,
} from "./model.js";
import { decodeMessage, encodeMessage, messageType } from "./proto.js";
import { toWire } from "./wire-encode.js";
import type { MeshConfig, TrustBundle } from "./wire-types.js";
import { fromWire } from "./wire-validate.js";

/** Every resource type, in the order a push sends them (what others refer to goes first). */
export const RESOURCE_KINDS = [
  "MeshConfig",
  "TrustBundle",
  "Workload",
  "Service",
  "AuthorizationPolicy",
  "PeerAuthentication",
  "RequestAuthentication",
  "RateLimitPolicy",
  "DestinationPolicy",
  "RouteTable",
] as const;

/** A resource type. */
export type ResourceKind = (typeof RESOURCE_KINDS)[number];

/** The model value each resource type carries. */
export interface ResourceValues {
  MeshConfig: MeshConfig;
  TrustBundle: TrustBundle;
  Workload: Workload;
  Service: Service;
  AuthorizationPolicy: AuthorizationPolicy;
  PeerAuthentication: PeerAuthentication;
  RequestAuthentication: RequestAuthentication;
  RateLimitPolicy: RateLimitPolicy;
  DestinationPolicy: DestinationPolicy;
  RouteTable: RouteTable;
}

/** Prefix of every weft type URL. */
export const TYPE_URL_PREFIX = "type.weft.dev/weft.mesh.v1.";

/** Name of the single TrustBundle resource. */
export const TRUST_BUNDLE_NAME = "trust-bundle";
/** Name of the single MeshConfig resource. */
export const MESH_CONFIG_NAME = "mesh";

/** The type URL of a resource type. */
export function typeUrlOf(kind: ResourceKind): string {
  return `${TYPE_URL_PREFIX}${kind}`;
}

/** The resource type of a type URL, or undefined when weft does not know it. */
export function kindOfTypeUrl(url: string): ResourceKind | undefined {
  if (!url.startsWith(TYPE_URL_PREFIX)) return undefined;
  const k = url.slice(TYPE_URL_PREFIX.length);
  return (RESOURCE_KINDS as readonly string[]).includes(k) ? (k as ResourceKind) : undefined;
}

/** The name a resource is known by within its type. */
export function resourceName<K extends ResourceKind>(kind: K, value: ResourceValues[K]): string {
  switch (kind) {
    case "Workload":
      return (value as Workload).uid;
    case "TrustBundle":
      return TRUST_BUNDLE_NAME;
    case "MeshConfig":
      return MESH_CONFIG_NAME;
    default:
      return (value as { key: string }).key;
  }
}

/** Encodes a model value as its weft.mesh.v1 message. */
export function encodeResource<K extends ResourceKind>(kind: K, value: ResourceValues[K]): Uint8Array {
  return encodeMessage(messageType(`weft.mesh.v1.${kind}`), toWire(kind, value));
}

/**
 * Decodes and validates a resource body; throws an Error whose message says what is wrong and
 * where ("addresses[0] '10.0.0.999' is not an IP address"). The value is deep-frozen.
 */
export function decodeResource<K extends ResourceKind>(kind: K, name: string, body: Uint8Array): ResourceValues[K] {
  let raw: unknown;
  try {
    raw = decodeMessage(messageType(`weft.mesh.v1.${kind}`), body);
  } catch (e) {
    throw new Error(`not a valid ${kind} message: ${errorMessage(e)}`);
  }
  const value = fromWire(kind, raw);
  const actual = resourceName(kind, value);
  if (actual !== name) throw new Error(`resource is named '${name}' but its body is '${actual}'`);
  return deepFreeze(value);
}

/** Freezes an object graph so a published snapshot can never be changed under a reader. */
export function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as Record<string, unknown>)) deepFreeze(v);
  }
  return value;
}
