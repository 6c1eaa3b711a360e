/**
 * The test bed's commands (`weft up`, `weft down`, `weft cluster …`). The CLI finds this module
 * beside its install and registers what it exports: shipped code never imports scripts/, so a
 * node image built without the test bed simply has no such commands.
 */
import type { Command } from "commander";
import { registerClusterCommands } from "./cluster/cli.js";
import { registerUpCommands } from "./up.js";

/** Registers every test-bed command on the program. */
export function registerTestBedCommands(program: Command): void {
  registerUpCommands(program);
  registerClusterCommands(program);
}
