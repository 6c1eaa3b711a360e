import { dirname, join, resolve } from "node:path";
import { PORT_INBOUND_PLAINTEXT, PORT_OUTBOUND, PROXY_MARK } from "../../controller/api/constants.js";
import { pathExists } from "../../native/paths.js";
import type { RedirectConfig } from "./types.js";

/** Default pin directory of a node's agent. */
export const DEFAULT_PIN_DIR = "/sys/fs/bpf/weft";

/**
 * bpf/build of this checkout or install: WEFT_BPF_OBJECT_DIR when set, else found by walking up
 * from this module (it runs from agent/redirect in source and from dist/agent/redirect when built).
 */
export function defaultObjectDir(): string {
  if (process.env.WEFT_BPF_OBJECT_DIR) return resolve(process.env.WEFT_BPF_OBJECT_DIR);
  let dir = import.meta.dirname;
  for (let i = 0; i < 5; i++) {
    if (pathExists(join(dir, "bpf", "Makefile"))) return join(dir, "bpf", "build");
    dir = dirname(dir);
  }
  return resolve(import.meta.dirname, "..", "..", "bpf", "build");
}

/** A full config from the parts a deployment must supply. */
export function redirectConfig(
  parts: Pick<RedirectConfig, "podCgroupParent" | "proxyCgroup" | "proxyAddress"> & Partial<RedirectConfig>,
): RedirectConfig {
  return {
    pinDir: DEFAULT_PIN_DIR,
    objectDir: defaultObjectDir(),
    outboundPort: PORT_OUTBOUND,
    inboundPlaintextPort: PORT_INBOUND_PLAINTEXT,
    proxyMark: PROXY_MARK,
    excluded: [],
    ...parts,
  };
}
