/** The floor: the client pod dials the server pod's IP; no proxy, no TLS. */
import type { BenchVariant } from "../lib/variant.js";

/** A fresh direct variant. */
export function directVariant(serverNode: 1 | 2 = 2): BenchVariant {
  return {
    name: serverNode === 1 ? "direct-same-node" : "direct",
    title: serverNode === 1 ? "direct, same node (no proxy)" : "direct (no proxy)",
    serverNode,
    unavailable: () => null,
    async setup(ctx) {
      return { target: { host: ctx.server.ip, port: ctx.serverPort }, proxyPids: [] };
    },
    async teardown() {},
  };
}
