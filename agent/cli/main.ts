#!/usr/bin/env node
/** `weft`: the one CLI. Each area registers its own subcommands; this file only wires them. */
import { Command } from "commander";
import { registerControllerCommands } from "../../controller/cli.js";
import { registerClusterCommands } from "../../scripts/cluster/cli.js";
import { VERSION } from "../version.js";
import { registerAgentCommand } from "./agent-command.js";
import { registerNodeCommands } from "./node-commands.js";
import { registerRedirectCommands } from "./redirect-commands.js";
import { registerUpCommands } from "./up.js";

/** Builds the command tree (exported for tests and docs generation). */
export function buildProgram(): Command {
  const program = new Command("weft")
    .description("weft: an eBPF-assisted, node-level transparent service mesh")
    .version(VERSION)
    .showHelpAfterError("(run with --help for usage)")
    // Flags after a subcommand belong to it (`weft agent uninstall --pin-dir` vs `weft agent --pin-dir`).
    .enablePositionalOptions()
    .configureOutput({ outputError: (str, write) => write(`weft: ${str.replace(/^error: /, "")}`) });
  registerUpCommands(program);
  registerClusterCommands(program);
  registerAgentCommand(program);
  registerControllerCommands(program);
  registerRedirectCommands(program);
  registerNodeCommands(program);
  return program;
}

await buildProgram().parseAsync(process.argv);
