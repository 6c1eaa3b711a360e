/**
 * `weft agent`: runs the node agent. The `agent` command also holds subcommands that other areas
 * attach (`weft agent uninstall`): whoever registers first creates it, the others find it by name
 * with `agentCommand(program)`, so registration order does not matter.
 */
import type { Command } from "commander";
import { action } from "../../common/cli-output.js";
import { untilSignal } from "../../native/proc.js";

/** The `agent` command, created on first use (subcommands attach to the same one). */
export function agentCommand(program: Command): Command {
  return program.commands.find((c) => c.name() === "agent") ?? program.command("agent").enablePositionalOptions();
}

/** Registers `weft agent` (run the agent). */
export function registerAgentCommand(program: Command): void {
  agentCommand(program)
    .description("run the node agent: eBPF capture, the node proxy, xDS client, identity manager, admin API (subcommands manage the node)")
    .option("--node <name>", "this node's Kubernetes name (default: $NODE_NAME, else the hostname)")
    .option("--controller <host:port>", "the controller's gRPC address, e.g. 10.250.0.1:15012")
    .option("--token-file <file>", "the node's credential (bootstrap token, or projected service-account token)")
    .option("--ca-file <file>", "root certificate(s) the controller's TLS certificate chains to")
    .option("--server-name <name>", "TLS name to expect from the controller (default: the host of --controller)")
    .option("--local-config <yaml>", "run without a controller from Kubernetes YAML (a file or a directory)")
    .option("--local-ca-dir <dir>", "local-file mode: the CA directory (generated when empty; share it between agents)")
    .option("--trust-domain <domain>", "SPIFFE trust domain (local mode, and until the controller says)", "cluster.local")
    .option("--root-namespace <ns>", "namespace of mesh-wide policy (local mode)", "weft-system")
    .option("--cluster-domain <domain>", "Kubernetes cluster domain (local mode)", "cluster.local")
    .option("--admin-address <ip:port>", "admin API on loopback, or 'off'", "127.0.0.1:15000")
    .option("--admin-socket <path>", "admin API unix socket, or 'off' (default /run/weft/agent-<node>.sock)")
    .option("--cert-ttl <duration>", "certificate lifetime to request (default: the CA's)")
    .option("--reconnect-max <duration>", "longest wait between reconnects to the controller", "10s")
    .option("--log-level <level>", "trace, debug, info, warn or error", "info")
    .option(
      "--proxy-address <ip>",
      "data plane: the pods' gateway address, where captured connections arrive (port 15001); without it the agent runs control-plane parts only (config, certificates, admin API: no proxy, no capture)",
    )
    .option("--hbone-address <ip>", "data plane: address HBONE (15008) listens on", "0.0.0.0")
    .option("--pod-cgroup <path>", "capture: the parent cgroup of this node's pods (absolute, or relative to the cgroup v2 root)")
    .option("--cgroup-layout <layout>", "capture: how pod cgroups are named under it: kubelet or local (weft's local cluster)", "kubelet")
    .option("--proxy-cgroup <path>", "capture: the agent's own cgroup (default: the one it runs in)")
    .option("--pin-dir <dir>", "capture: bpffs directory for pinned programs and maps", "/sys/fs/bpf/weft")
    .option("--exclude <cidr[:port]...>", "capture: destinations never captured (repeatable)")
    .option("--proxy-workers <n>", "proxy worker threads sharing the ports (0: in the agent's thread)", "0")
    .option(
      "--same-node-splice <mode>",
      "same-node connections with L4 policy only: kernel (sockets spliced by eBPF, falling back to proxy if it cannot load) or proxy (copied by the proxy)",
      "kernel",
    )
    .option("--metrics-address <ip:port>", "Prometheus metrics, or 'off'", "0.0.0.0:15020")
    .option("--readiness-address <ip:port>", "readiness (/healthz/ready), or 'off'", "0.0.0.0:15021")
    .option(
      "--drain <duration>",
      "on SIGTERM or a handover to a new agent: how long established connections may go on (new ones go to the successor)",
      "600s",
    )
    .option(
      "--state-dir <dir>",
      "where the last accepted config and the certificates are kept (root-only), so a restart serves before the controller answers; under /run (e.g. /run/weft/state), it lives as long as the pinned BPF state (default: off)",
    )
    .option("--tracing-endpoint <url>", "request tracing: OTLP http/protobuf collector, e.g. http://10.250.0.1:4318 (default: off)")
    .option(
      "--tracing-sampling <percent>",
      "request tracing: percentage of new traces sampled (Istio's randomSamplingPercentage)",
      undefined,
    )
    .option(
      "--limit <name=value>",
      "override a proxy limit, e.g. maxConnectionsPerPeer=2048 (repeatable; docs/LIMITS.md)",
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .action(
      action(async (o) => {
        // Loaded here, not at the top: other `weft` commands should not pay for gRPC and X.509.
        const { agentConfig } = await import("../config.js");
        const { AgentApp } = await import("../app.js");
        const app = new AgentApp(agentConfig(o));
        await app.start();
        const sig = await untilSignal();
        // While draining, SIGTERM again changes nothing (a rolling update's kubelet sends it to an
        // agent its successor already asked to drain); SIGINT (Ctrl-C) is the way out of a long drain.
        process.on("SIGTERM", () => app.log.info("already draining (SIGINT exits at once)"));
        process.once("SIGINT", () => {
          app.log.warn("SIGINT while draining: exiting now");
          process.exit(0);
        });
        app.log.info({ signal: sig }, "agent stopping: releasing the node, then draining");
        await app.stop();
        // Stopped cleanly; do not wait for stray handles (a gRPC channel's timers) to drain.
        process.exit(0);
      }),
    );
}
