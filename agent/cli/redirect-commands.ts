/**
 * `weft redirect serve|status` (the eBPF capture on its own: the tests' and local cluster's agent
 * stand-in, and an operator's view of the pinned state) and `weft agent uninstall` (detach and
 * unpin everything, e.g. before removing weft from a node).
 */

import { resolve } from "node:path";
import { type Command, Option } from "commander";
import { action, CliError, emit, intOption, parseFormat, table } from "../../common/cli-output.js";
import { errorMessage } from "../../common/errors.js";
import { PORT_INBOUND_PLAINTEXT, PORT_OUTBOUND, PROXY_MARK } from "../../controller/api/constants.js";
import { netnsPath } from "../../native/netns.js";
import { removeNodeRules } from "../capture/node-rules.js";
import { ipv4ToInt } from "../redirect/codec.js";
import { DEFAULT_PIN_DIR, defaultObjectDir, redirectConfig } from "../redirect/defaults.js";
import { parseExclude } from "../redirect/exclude.js";
import { inspect } from "../redirect/inspect.js";
import { PinDirLock } from "../redirect/lock.js";
import { listPins, removeAllPins } from "../redirect/pins.js";
import { serve } from "../redirect/serve.js";
import { agentCommand } from "./agent-command.js";

function ipv4Option(name: string): (v: string) => string {
  return (v: string) => {
    try {
      ipv4ToInt(v);
    } catch {
      throw new CliError(`${name} '${v}': expected an IPv4 address`);
    }
    return v;
  };
}

function collectExclude(v: string, prev: string[]): string[] {
  try {
    parseExclude(v);
  } catch (e) {
    throw new CliError(`--exclude: ${errorMessage(e)}`);
  }
  return [...prev, v];
}

function markOption(v: string): number {
  const n = Number(v);
  if (!/^(0x[0-9a-fA-F]+|\d+)$/.test(v) || n < 1 || n > 0xffffffff)
    throw new CliError(`--proxy-mark '${v}': expected a number from 1 to 0xffffffff`);
  return n;
}

function requireRoot(what: string): void {
  if (typeof process.getuid === "function" && process.getuid() !== 0) {
    throw new CliError(`${what} must run as root (it loads and attaches eBPF programs); try: sudo weft ${what.replace(/^weft /, "")}`);
  }
}

/** Registers `weft redirect …` and `weft agent uninstall`. */
export function registerRedirectCommands(program: Command): void {
  const redirect = program.command("redirect").description("eBPF capture of pod connections into the node proxy");

  redirect
    .command("serve")
    .description("load and attach the capture programs, then keep the maps in step with a pods file (JSON PodRedirect[])")
    .requiredOption("--pods <file>", "JSON file of PodRedirect[] to reconcile (watched)")
    .requiredOption("--pod-cgroup-parent <path>", "cgroup v2 directory holding the node's pods (connect/sockops/getpeername attach here)")
    .requiredOption("--proxy-cgroup <path>", "cgroup v2 directory of the proxy (sock_create/getsockname attach here)")
    .requiredOption("--proxy-address <ip>", "address captured connects go to (the pods' gateway)", ipv4Option("--proxy-address"))
    .option("--node-name <name>", "node name, for logs", process.env.NODE_NAME ?? "local")
    .option("--pin-dir <dir>", "bpffs directory for the pins", DEFAULT_PIN_DIR)
    .option("--object-dir <dir>", "directory of the prebuilt BPF objects", defaultObjectDir())
    .option("--outbound-port <port>", "proxy port for captured connects", intOption("--outbound-port", 1, 65535), PORT_OUTBOUND)
    .option(
      "--inbound-plaintext-port <port>",
      "proxy port for plaintext inbound",
      intOption("--inbound-plaintext-port", 1, 65535),
      PORT_INBOUND_PLAINTEXT,
    )
    .addOption(
      new Option("--proxy-mark <mark>", "SO_MARK of the proxy's sockets")
        .argParser(markOption)
        .default(PROXY_MARK, `0x${PROXY_MARK.toString(16)}`),
    )
    .option("--exclude <dest>", "never capture a.b.c.d[/len][:port] or :port (repeatable)", collectExclude, [] as string[])
    .option("--netns <name>", "named netns holding the pods' host veths (default: this process's)")
    .option("--resync-ms <ms>", "re-read the pods file this often", intOption("--resync-ms", 100, 3_600_000), 5000)
    .action(
      action(async (o) => {
        requireRoot("weft redirect serve");
        const config = redirectConfig({
          podCgroupParent: resolve(o.podCgroupParent),
          proxyCgroup: resolve(o.proxyCgroup),
          proxyAddress: o.proxyAddress,
          pinDir: resolve(o.pinDir),
          objectDir: resolve(o.objectDir),
          outboundPort: o.outboundPort,
          inboundPlaintextPort: o.inboundPlaintextPort,
          proxyMark: o.proxyMark,
          excluded: o.exclude,
        });
        await serve({
          config,
          podsFile: resolve(o.pods),
          nodeName: o.nodeName,
          resyncMs: o.resyncMs,
          ...(o.netns ? { netnsPath: o.netns.startsWith("/") ? o.netns : netnsPath(o.netns) } : {}),
        });
      }),
    );

  redirect
    .command("status")
    .description("what a pin directory holds: links, programs, maps, enrolled pods, guards, counters (read-only)")
    .option("--pin-dir <dir>", "bpffs directory of the pins", DEFAULT_PIN_DIR)
    .option("-o, --output <format>", "table, json or yaml", "table")
    .action(
      action((o) => {
        requireRoot("weft redirect status");
        const format = parseFormat(o.output);
        const s = inspect(resolve(o.pinDir));
        emit(format, s, () => {
          if (!s.exists) return `${s.pinDir}: nothing installed`;
          const lines = [`${s.pinDir}: ${s.state}${s.reason ? ` (${s.reason})` : ""}`, ""];
          lines.push(
            table(
              ["PIN", "LINK", "PROGRAM", "PROG-ID", "ATTACHED"],
              s.links.map((l) => [
                l.pin,
                String(l.linkId),
                l.progName,
                String(l.progId),
                l.kind === "cgroup" ? `cgroup ${l.cgroupId}` : `${l.kind} if ${l.ifindex ?? "?"}`,
              ]),
            ),
          );
          lines.push(
            "",
            table(
              ["POD-CGROUP", "IP", "FLAGS"],
              s.pods.map((p) => [p.cgroupId, p.ip, p.flags & 1 ? "capture" : "-"]),
            ),
          );
          lines.push(
            "",
            table(
              ["GUARDED-IP", "MODE", "IFINDEX"],
              s.guard.map((g) => [g.ip, g.mode, String(g.ifindex)]),
            ),
          );
          if (s.excluded.length) lines.push("", `excluded: ${s.excluded.join(", ")}`);
          const nonZero = Object.entries(s.stats).filter(([, n]) => n > 0);
          if (nonZero.length) lines.push("", `counters: ${nonZero.map(([k, n]) => `${k}=${n}`).join(" ")}`);
          return lines.join("\n");
        });
      }),
    );

  // `weft agent` may already exist (the agent's own command); uninstall hangs under it either way.
  const agent = agentCommand(program);
  agent
    .command("uninstall")
    .description("detach every weft eBPF program on this node, remove all its pins and its nftables capture rules")
    .option("--pin-dir <dir>", "bpffs directory of the pins", DEFAULT_PIN_DIR)
    .action(
      action(async (o) => {
        requireRoot("weft agent uninstall");
        const pinDir = resolve(o.pinDir);
        try {
          if (await removeNodeRules(null)) process.stdout.write("removed the nftables table ip weft and its policy route\n");
        } catch (e) {
          process.stderr.write(`could not remove the nftables table ip weft: ${errorMessage(e)}\n`);
        }
        if (listPins(pinDir).length === 0 && !inspect(pinDir).exists) {
          process.stdout.write(`${pinDir}: nothing installed\n`);
          return;
        }
        const lock = PinDirLock.acquire(pinDir);
        try {
          const removed = removeAllPins(pinDir);
          process.stdout.write(`${pinDir}: detached and removed ${removed.length} pins (${removed.join(", ")})\n`);
        } finally {
          lock.release();
        }
      }),
    );
}
