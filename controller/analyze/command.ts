/**
 * `weft analyze`: checks YAML files (-f, before apply) or the live cluster (--cluster: the running
 * controller analyzes what it holds, with the agents it sees). Exit 1 when any message is an error,
 * 2 when the input cannot be analyzed at all.
 */
import { join } from "node:path";
import { adminGet } from "../../common/admin-server.js";
import { CliError, emit, parseFormat, table } from "../../common/cli-output.js";
import { DEFAULT_STATE_DIR } from "../config.js";
import { analyze, hasErrors } from "./analyze.js";
import { MESSAGE_CODES } from "./codes.js";
import { loadFiles } from "./load.js";
import type { AnalysisMessage } from "./message.js";

/** Options of `weft analyze`. */
export interface AnalyzeFlags {
  file?: string[];
  cluster?: boolean;
  namespace?: string;
  output?: string;
  stateDir?: string;
  adminSocket?: string;
  trustDomain?: string;
  rootNamespace?: string;
  listCodes?: boolean;
}

/** The human form: one line per message, codes first (grep-able), and a summary. */
export function renderMessages(messages: readonly AnalysisMessage[]): string {
  if (messages.length === 0) return "✔ No problems found.";
  const lines = messages.map(
    (m) =>
      `${m.severity.toUpperCase().padEnd(7)} [${m.code}] (${m.object ?? m.origin ?? "input"}) ${m.message}${m.origin && m.object ? `  (${m.origin})` : ""}`,
  );
  const count = (s: string) => messages.filter((m) => m.severity === s).length;
  lines.push(`${count("error")} error(s), ${count("warning")} warning(s), ${count("info")} info; see docs/analyze/<code>.md`);
  return lines.join("\n");
}

async function fromCluster(flags: AnalyzeFlags): Promise<AnalysisMessage[]> {
  const socket = flags.adminSocket ?? join(flags.stateDir ?? DEFAULT_STATE_DIR, "controller.sock");
  const r = await adminGet(socket, "/analyze", 10_000, "controller").catch((e: Error) => {
    throw new CliError(`${e.message} (--cluster asks the running controller; is it up? else pass --state-dir or --admin-socket)`, 2);
  });
  return (JSON.parse(r.body) as { messages: AnalysisMessage[] }).messages;
}

/** Runs the command; returns the exit code. */
export async function runAnalyze(flags: AnalyzeFlags): Promise<number> {
  const format = parseFormat(flags.output);
  if (flags.listCodes) {
    emit(format, MESSAGE_CODES, () =>
      table(
        ["CODE", "NAME", "SEVERITY", "MEANING"],
        MESSAGE_CODES.map((c) => [c.code, c.name, c.severity, c.summary]),
      ),
    );
    return 0;
  }
  const files = flags.file ?? [];
  if (files.length === 0 && !flags.cluster) throw new CliError("nothing to analyze: give -f <file|dir|-> (repeatable) and/or --cluster", 2);
  const messages: AnalysisMessage[] = [];
  if (files.length) {
    const input = loadFiles(files, flags.namespace ?? "default");
    if (input.objects.length === 0 && input.problems.length === 0)
      throw new CliError(`no Kubernetes objects found in ${files.join(", ")}`, 2);
    messages.push(
      ...analyze({
        objects: input.objects,
        inputProblems: input.problems,
        options: {
          trustDomain: flags.trustDomain ?? "cluster.local",
          rootNamespace: flags.rootNamespace ?? "weft-system",
          clusterDomain: "cluster.local",
        },
      }),
    );
  }
  if (flags.cluster) messages.push(...(await fromCluster(flags)));
  emit(format, { messages }, () => renderMessages(messages));
  return hasErrors(messages) ? 1 : 0;
}
