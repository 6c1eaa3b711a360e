/**
 * The agent's connection to the controller: TLS (the controller's serving certificate is checked
 * against the configured roots plus the trust bundle the controller pushed, so a root rotation
 * does not cut agents off) and the node credential on every call.
 */
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { checkServerIdentity } from "node:tls";
import { type ChannelOptions, Client, credentials, Metadata } from "@grpc/grpc-js";
import { errorMessage } from "../../common/errors.js";

/** How to reach and authenticate to the controller. */
export interface ControllerEndpoint {
  /** "host:port". */
  target: string;
  /** TLS name to verify instead of the target's host. */
  serverName?: string;
  /** File holding the node credential (read on every connection, so a rotated token is picked up). */
  tokenFile: string;
  /** Roots trusted for the controller's certificate. */
  roots: () => readonly string[];
}

/** Reads the credential, with an error an operator can act on. */
export function readCredential(path: string): string {
  let token: string;
  try {
    token = readFileSync(path, "utf8").trim();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(
      code === "ENOENT"
        ? `token file ${path} does not exist (the controller writes <state dir>/tokens/<node>.token when it sees the node)`
        : `cannot read token file ${path}: ${errorMessage(e)}`,
    );
  }
  if (!token) throw new Error(`token file ${path} is empty`);
  return token;
}

/** Channel options shared by the agent's clients. */
export function channelOptions(ep: ControllerEndpoint): ChannelOptions {
  const opts: ChannelOptions = {
    "grpc.keepalive_time_ms": 15_000,
    "grpc.keepalive_timeout_ms": 5_000,
    "grpc.keepalive_permit_without_calls": 1,
    "grpc.max_receive_message_length": 256 * 1024 * 1024,
    // The agent reconnects by itself with its own backoff; one attempt per channel.
    "grpc.initial_reconnect_backoff_ms": 100,
  };
  if (ep.serverName) opts["grpc.ssl_target_name_override"] = ep.serverName;
  else if (isIP(targetHost(ep.target))) opts["grpc.ssl_target_name_override"] = SNI_FOR_IP_TARGETS;
  return opts;
}

/**
 * TLS forbids an IP address as SNI (Node warns about it); for a controller addressed by IP the
 * agent sends this name instead and still checks the certificate against the IP.
 */
const SNI_FOR_IP_TARGETS = "weft-controller";

function targetHost(target: string): string {
  const m = /^\[([^\]]+)\]:\d+$/.exec(target) ?? /^([^:]+):\d+$/.exec(target);
  return m?.[1] ?? target;
}

/** A new gRPC client to the controller with the current roots. */
export function controllerClient(ep: ControllerEndpoint): Client {
  const roots = ep.roots();
  if (roots.length === 0) throw new Error("no roots to verify the controller with (--ca-file)");
  const host = targetHost(ep.target);
  const verify =
    !ep.serverName && isIP(host)
      ? { checkServerIdentity: (_name: string, cert: Parameters<typeof checkServerIdentity>[1]) => checkServerIdentity(host, cert) }
      : {};
  return new Client(ep.target, credentials.createSsl(Buffer.from(roots.join("")), null, null, verify), channelOptions(ep));
}

/** Call metadata carrying the node credential. */
export function authMetadata(ep: ControllerEndpoint): Metadata {
  const md = new Metadata();
  md.set("authorization", `Bearer ${readCredential(ep.tokenFile)}`);
  return md;
}
