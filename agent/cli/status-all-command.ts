/** The action of `weft status --all` (loaded only when asked). */
import { CliError, emit, type OutputFormat } from "../../common/cli-output.js";
import { durationMs } from "../../common/duration.js";
import { parseAgentAddress, timeoutMs } from "./agent-client.js";
import { agentAddresses } from "./graph-source.js";
import { collectDrift, renderDrift } from "./status-all.js";

/** Runs `weft status --all`; exit 1 when an agent is lagging, rejected or unreachable. */
export async function runStatusAll(
  o: { agent?: string; agents?: string; controller?: string; lagAfter: string; timeout?: string },
  format: OutputFormat,
): Promise<void> {
  const lag = durationMs(o.lagAfter);
  if (lag === null || lag < 0) throw new CliError(`--lag-after '${o.lagAfter}': expected a duration such as 2s`);
  const list = o.agents
    ? o.agents
        .split(",")
        .map((a) => a.trim())
        .filter(Boolean)
    : o.agent
      ? [o.agent]
      : undefined;
  const addresses = list ? list.map((a) => parseAgentAddress(a, "--agents")) : agentAddresses(undefined);
  const report = await collectDrift(addresses, o.controller, lag, timeoutMs(o.timeout));
  emit(format, report, () => renderDrift(report));
  if (report.agents.some((a) => a.verdict !== "ok" && a.verdict !== "NOT READY")) process.exitCode = 1;
}
