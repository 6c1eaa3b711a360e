/** `weft log-level [level]`: show or change the agent's log level at run time (proxy workers included). */
import type { Command } from "commander";
import { action, CliError, emit, parseFormat } from "../../common/cli-output.js";
import { LOG_LEVELS } from "../../common/log.js";
import { agentOptions, connectAgent } from "./agent-client.js";

/** Registers `weft log-level`. */
export function registerLogLevelCommand(program: Command): void {
  agentOptions(
    program
      .command("log-level")
      .argument("[level]", `new level: ${LOG_LEVELS.join(", ")} (omit to show the current one)`)
      .description("show or change the agent's log level at run time, without a restart"),
  )
    .option("-o, --output <format>", "table, json or yaml", "table")
    .action(
      action(async (level: string | undefined, o) => {
        const format = parseFormat(o.output);
        if (level !== undefined && !(LOG_LEVELS as readonly string[]).includes(level))
          throw new CliError(`unknown log level '${level}': use ${LOG_LEVELS.join(", ")}`);
        const agent = await connectAgent(o);
        const before = (await agent.json<{ level: string }>("/logging")).level;
        if (level === undefined) {
          emit(format, { level: before }, () => before);
          return;
        }
        const after = (await agent.json<{ level: string }>(`/logging?level=${encodeURIComponent(level)}`, "POST")).level;
        emit(format, { previous: before, level: after }, () => `log level ${before} -> ${after} (${agent.label})`);
      }),
    );
}
