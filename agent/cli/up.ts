/**
 * `weft up` / `weft down`: the README's first command. Brings up the local mesh on network
 * namespaces; grows as the mesh does (controller, agents, demo traffic).
 */
import type { Command } from "commander";
import { defaultClusterName } from "../../scripts/cluster/cli.js";
import { clusterDown, clusterUp } from "../../scripts/cluster/cluster.js";
import { loadState } from "../../scripts/cluster/state.js";
import { DEFAULT_SPEC, MAX_NODES } from "../../scripts/cluster/topology.js";
import { action, CliError, intOption } from "./output.js";

/** Registers `weft up` and `weft down`. */
export function registerUpCommands(program: Command): void {
  program
    .command("up")
    .description("bring up the local mesh: a multi-node cluster on network namespaces")
    .option("--name <name>", "cluster name", defaultClusterName())
    .option("--nodes <n>", "number of nodes", intOption("--nodes", 1, MAX_NODES), DEFAULT_SPEC.nodes)
    .action(
      action(async (o) => {
        if (loadState(o.name)) throw new CliError(`the local mesh '${o.name}' is already up; 'weft down' removes it`);
        const state = await clusterUp({ ...DEFAULT_SPEC, name: o.name, nodes: o.nodes });
        const first = state.pods[0];
        const last = state.pods[state.pods.length - 1];
        process.stdout.write(
          [
            `weft: local cluster '${state.spec.name}' is up: ${state.nodes.length} nodes, ${state.pods.length} pods`,
            `  file store (what the controller reads): ${state.storeDir}`,
            "",
            "Try:",
            "  weft cluster status",
            first && last ? `  weft cluster exec ${first.name} -- ip route      # a pod: no default route, only the cluster` : "",
            "  weft down",
            "",
          ].join("\n"),
        );
      }),
    );
  program
    .command("down")
    .description("tear the local mesh down, leaving nothing behind")
    .option("--name <name>", "cluster name", defaultClusterName())
    .action(
      action(async (o) => {
        const r = await clusterDown(o.name);
        process.stdout.write(
          `weft: removed ${r.netns.length} netns, ${r.cgroups.length} cgroup trees, ${r.pins.length} pins, ${r.processes} processes\n`,
        );
        if (r.problems.length) throw new CliError(`cleanup incomplete:\n  ${r.problems.join("\n  ")}`);
      }),
    );
}
