/**
 * The node-level troubleshooting commands (`weft check`, `status`, `workloads`, `services`,
 * `policies`, `certs`, `connections`, `tap`, `bpf`, `log-level`, `explain`), registered together.
 * How they find the agent: agent-client.ts; what they show: docs/CLI.md.
 */
import type { Command } from "commander";
import { registerBpfCommand } from "./bpf.js";
import { registerCertsCommand } from "./certs.js";
import { registerCheckCommand } from "./check.js";
import { registerConnectionsCommand } from "./connections.js";
import { registerExplainCommand } from "./explain.js";
import { registerGraphCommand } from "./graph.js";
import { registerInventoryCommands } from "./inventory.js";
import { registerLogLevelCommand } from "./log-level.js";
import { registerStatusCommand } from "./status.js";
import { registerTapCommand } from "./tap.js";

/** Registers every node troubleshooting command. */
export function registerNodeCommands(program: Command): void {
  registerCheckCommand(program);
  registerStatusCommand(program);
  registerInventoryCommands(program);
  registerCertsCommand(program);
  registerConnectionsCommand(program);
  registerTapCommand(program);
  registerExplainCommand(program);
  registerGraphCommand(program);
  registerBpfCommand(program);
  registerLogLevelCommand(program);
}
