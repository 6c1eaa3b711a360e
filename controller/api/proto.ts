/**
 * The .proto contract loaded at runtime with protobufjs, and the gRPC service definitions built
 * from it. Runtime loading (rather than generated static code) keeps the .proto files the only
 * source of truth with no generation step to forget: protobufjs compiles each message's encoder
 * and decoder into specialised functions on first use, so the speed is that of generated code,
 * and loading both files takes a few milliseconds once per process. The TypeScript shapes of the
 * wire messages live in wire-types.ts; a round-trip test keeps them and the .proto in step.
 */
import { statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ServiceDefinition } from "@grpc/grpc-js";
import protobuf from "protobufjs";

/** Directory holding the .proto files (found from the sources or from dist/). */
export function protoDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, "controller", "api");
    if (statSync(join(candidate, "xds.proto"), { throwIfNoEntry: false })?.isFile()) return candidate;
    if (statSync(join(dir, "xds.proto"), { throwIfNoEntry: false })?.isFile()) return dir;
    dir = dirname(dir);
  }
  throw new Error("controller/api/xds.proto not found above the weft installation; the package is incomplete");
}

let cachedRoot: protobuf.Root | undefined;

/** The parsed, resolved .proto files (loaded once). */
export function protoRoot(): protobuf.Root {
  if (!cachedRoot) {
    const dir = protoDir();
    cachedRoot = protobuf.loadSync([join(dir, "mesh.proto"), join(dir, "xds.proto")]);
    cachedRoot.resolveAll();
  }
  return cachedRoot;
}

/** A message type by its full name ("weft.mesh.v1.Workload"). */
export function messageType(fullName: string): protobuf.Type {
  return protoRoot().lookupType(fullName);
}

/** Options that turn decoded messages into plain objects shaped like the model. */
export const TO_OBJECT: protobuf.IConversionOptions = { defaults: true, arrays: true, objects: true, longs: Number };

/**
 * Encodes a plain object as the named message. The objects weft encodes are built by its own
 * code with the .proto's field names and types, so no fromObject conversion pass is needed.
 */
export function encodeMessage(type: protobuf.Type, value: object): Uint8Array {
  return type.encode(value as protobuf.Message).finish();
}

/** Decodes bytes into a plain object; throws with the protobuf error when they are not that message. */
export function decodeMessage<T>(type: protobuf.Type, bytes: Uint8Array): T {
  return type.toObject(type.decode(bytes), TO_OBJECT) as T;
}

/**
 * A grpc-js service definition for a service in the .proto: method paths, streaming flags and
 * (de)serialisers from protobufjs, so no proto-loader dependency is needed.
 */
export function serviceDefinition(fullName: string): ServiceDefinition {
  const service = protoRoot().lookupService(fullName);
  const def: Record<string, ServiceDefinition[string]> = {};
  for (const method of service.methodsArray) {
    method.resolve();
    const req = method.resolvedRequestType as protobuf.Type;
    const res = method.resolvedResponseType as protobuf.Type;
    def[method.name] = {
      path: `/${fullName}/${method.name}`,
      requestStream: Boolean(method.requestStream),
      responseStream: Boolean(method.responseStream),
      requestSerialize: (v: object) => Buffer.from(encodeMessage(req, v)),
      requestDeserialize: (b: Buffer) => decodeMessage(req, b),
      responseSerialize: (v: object) => Buffer.from(encodeMessage(res, v)),
      responseDeserialize: (b: Buffer) => decodeMessage(res, b),
      originalName: method.name,
    };
  }
  return def as ServiceDefinition;
}

/** gRPC service names. */
export const SERVICES = {
  discovery: "weft.xds.v1.AggregatedDiscovery",
  certificates: "weft.xds.v1.Certificates",
} as const;
