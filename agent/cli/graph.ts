/**
 * `weft graph`: the live service map from every agent's metrics (or Prometheus). Only the options
 * live here; the work (graph-run.ts) loads when the command runs, so other commands start fast.
 */
import type { Command } from "commander";
import { action } from "../../common/cli-output.js";
import type { GraphFlags } from "./graph-run.js";

/** Registers `weft graph`. */
export function registerGraphCommand(program: Command): void {
  program
    .command("graph")
    .description("live service map from every agent's metrics (or Prometheus): terminal, -o json|dot, or --serve a local page")
    .option("-o, --output <format>", "table (refreshing on a terminal), json or dot", "table")
    .option(
      "--agent <address>",
      "read this agent's admin API (repeatable; default: every /run/weft/agent-*.sock)",
      (v: string, p: string[] = []) => [...p, v],
    )
    .option("--prometheus <url>", "read rates from this Prometheus instead of the agents")
    .option("--window <duration>", "rate window: time between two scrapes of the agents, or Prometheus' range", "5s")
    .option("--interval <duration>", "refresh interval (terminal view and --serve)", "2s")
    .option("--once", "print one table and exit")
    .option("--serve", "serve the map as a live web page on 127.0.0.1")
    .option("--port <port>", "port of --serve (0: any free port)", "15099")
    .action(
      action(async (o: GraphFlags) => {
        const { runGraph } = await import("./graph-run.js");
        await runGraph(o);
      }),
    );
}
