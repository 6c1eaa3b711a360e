#!/usr/bin/env node
/** `weft`: the one CLI. Each area registers its own subcommands; this file only wires them. */
import { Command } from "commander";
import { VERSION } from "../version.js";

function baseProgram(): Command {
  return (
    new Command("weft")
      .description("weft: an eBPF-assisted, node-level transparent service mesh")
      .version(VERSION)
      .showHelpAfterError("(run with --help for usage)")
      // Flags after a subcommand belong to it (`weft agent uninstall --pin-dir` vs `weft agent --pin-dir`).
      .enablePositionalOptions()
      .configureOutput({ outputError: (str, write) => write(`weft: ${str.replace(/^error: /, "")}`) })
  );
}

/** The whole command tree. */
export async function buildProgram(): Promise<Command> {
  const program = baseProgram();
  const [up, cluster, agent, controller, redirect, node] = await Promise.all([
    import("./up.js"),
    import("../../scripts/cluster/cli.js"),
    import("./agent-command.js"),
    import("../../controller/cli.js"),
    import("./redirect-commands.js"),
    import("./node-commands.js"),
  ]);
  up.registerUpCommands(program);
  cluster.registerClusterCommands(program);
  agent.registerAgentCommand(program);
  controller.registerControllerCommands(program);
  redirect.registerRedirectCommands(program);
  node.registerNodeCommands(program);
  return program;
}

/**
 * `weft agent` and `weft controller` run for days on every node: they load only their own
 * command, not every other command's modules (~10 MB of RSS the daemon would carry for nothing).
 */
async function daemonProgram(argv: readonly string[]): Promise<Command | null> {
  const [cmd, next] = argv.slice(2);
  if (next !== undefined && !next.startsWith("-")) return null; // a subcommand (`weft agent uninstall`)
  if (next === "-h" || next === "--help" || argv.includes("--help") || argv.includes("-h")) return null;
  if (cmd === "agent") {
    const p = baseProgram();
    (await import("./agent-command.js")).registerAgentCommand(p);
    return p;
  }
  if (cmd === "controller") {
    const p = baseProgram();
    (await import("../../controller/cli.js")).registerControllerCommands(p);
    return p;
  }
  return null;
}

const program = (await daemonProgram(process.argv)) ?? (await buildProgram());
await program.parseAsync(process.argv);
