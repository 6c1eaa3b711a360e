/** The floor: the client pod dials the server pod's IP; no proxy, no TLS. */
import type { BenchVariant } from "../lib/variant.js";

/** A fresh direct variant. */
export function directVariant(): BenchVariant {
  return {
    name: "direct",
    title: "direct (no proxy)",
    unavailable: () => null,
    async setup(ctx) {
      return { target: { host: ctx.server.ip, port: ctx.serverPort }, proxyPids: [] };
    },
    async teardown() {},
  };
}
