#!/usr/bin/env node
/** `weft`: the one CLI. Each area registers its own subcommands; this file only wires them. */
import { statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { VERSION } from "../version.js";

/**
 * The test bed (scripts/: `weft up`, `weft down`, `weft cluster …`) is a plugin of the CLI, not a
 * dependency: found at run time beside this install, so nothing shipped imports it (the layer rule
 * in docs/ARCHITECTURE.md) and an image built without it just lacks those commands.
 */
const TEST_BED_COMMANDS = new URL("../../scripts/commands.js", import.meta.url);

async function registerTestBed(program: Command): Promise<void> {
  // stat, not existsSync: access(2) checks the real uid without capabilities, so a user given
  // CAP_DAC_READ_SEARCH for a checkout below a 0700 directory would be told 'unknown command'.
  if (!statSync(fileURLToPath(TEST_BED_COMMANDS), { throwIfNoEntry: false })) return;
  const mod = (await import(TEST_BED_COMMANDS.href)) as { registerTestBedCommands: (p: Command) => void };
  mod.registerTestBedCommands(program);
}

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
  const [, agent, controller, redirect, node] = await Promise.all([
    registerTestBed(program),
    import("./agent-command.js"),
    import("../../controller/cli.js"),
    import("./redirect-commands.js"),
    import("./node-commands.js"),
  ]);
  agent.registerAgentCommand(program);
  controller.registerControllerCommands(program);
  controller.registerAnalyzeCommand(program);
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
