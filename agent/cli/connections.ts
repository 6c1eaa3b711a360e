/**
 * `weft connections [--watch]`: the proxy's live connections — direction, path (hbone, same-node,
 * passthrough), source and destination workloads and identities, service, bytes, age and the
 * policy decision. --watch refreshes until Ctrl-C (a redrawn screen on a terminal, one snapshot
 * after another otherwise, NDJSON with -o json).
 */
import type { Command } from "commander";
import { stringify } from "yaml";
import { action, CliError, emit, parseFormat, table } from "../../common/cli-output.js";
import { sleep } from "../../common/sleep.js";
import type { ConnectionSnapshot } from "../proxy/connection-manager.js";
import { agentOptions, connectAgent } from "./agent-client.js";
import { bytes, duration, interruptible } from "./humanize.js";

/** "spiffe://cluster.local/ns/a/sa/b" → "a/sa/b" (the trust domain is the same mesh-wide). */
export function shortIdentity(id: string | undefined): string {
  if (!id) return "-";
  const m = /^spiffe:\/\/[^/]+\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(id);
  return m ? `${m[1]}/sa/${m[2]}` : id;
}

const hostPort = (a: { ip: string; port: number } | undefined) => (a ? (a.port ? `${a.ip}:${a.port}` : a.ip) : "-");

/** True when a connection involves the pod or namespace named. */
export function connectionMatches(c: ConnectionSnapshot, pod: string | undefined, ns: string | undefined): boolean {
  const workloads = [c.srcWorkload, c.dstWorkload].filter((w): w is string => Boolean(w));
  if (ns && !workloads.some((w) => w.startsWith(`${ns}/`))) return false;
  if (!pod) return true;
  if ([c.src.ip, c.dst.ip, c.target?.ip].includes(pod)) return true;
  const want = pod.includes("/") ? pod : ns ? `${ns}/${pod}` : undefined;
  return workloads.some((w) => (want ? w === want : w.slice(w.indexOf("/") + 1) === pod));
}

/** The table (exported for tests). */
export function renderConnections(conns: readonly ConnectionSnapshot[]): string {
  if (conns.length === 0) return "no live connections";
  return table(
    ["ID", "DIR", "PATH", "SOURCE", "SOURCE-ID", "DESTINATION", "DEST-ID", "SERVICE", "RECV/SENT", "AGE", "POLICY"],
    [...conns]
      .sort((a, b) => a.id - b.id)
      .map((c) => [
        String(c.id),
        c.direction === "inbound" ? "in" : "out",
        c.splice === "kernel" ? `${c.mode} (kernel)` : c.mode,
        c.srcWorkload ?? hostPort(c.src),
        shortIdentity(c.srcIdentity),
        c.dstWorkload ? `${c.dstWorkload} ${hostPort(c.target ?? c.dst)}` : hostPort(c.target ?? c.dst),
        shortIdentity(c.dstIdentity),
        c.service ?? "-",
        `${bytes(c.bytesReceived)}/${bytes(c.bytesSent)}`,
        duration(c.ageMs),
        c.policy ?? "-",
      ]),
  );
}

/** Registers `weft connections`. */
export function registerConnectionsCommand(program: Command): void {
  agentOptions(
    program
      .command("connections")
      .description("live proxied connections: direction, path, workloads and identities, service, bytes, age, policy decision"),
  )
    .option("--pod <pod>", "only connections from or to this pod (ns/name, name or IP)")
    .option("-n, --namespace <ns>", "only connections from or to this namespace")
    .option("-w, --watch", "refresh until Ctrl-C")
    .option("--interval <duration>", "refresh period with --watch", "2s")
    .option("-o, --output <format>", "table, json or yaml", "table")
    .action(
      action(async (o) => {
        const format = parseFormat(o.output);
        const agent = await connectAgent(o);
        const fetch = async () =>
          (await agent.json<{ connections: ConnectionSnapshot[] }>("/connections")).connections.filter((c) =>
            connectionMatches(c, o.pod, o.namespace),
          );
        if (!o.watch) {
          const conns = await fetch();
          emit(format, conns, () => renderConnections(conns));
          return;
        }
        const m = /^(\d+(?:\.\d+)?)(ms|s)$/.exec(o.interval);
        const every = m ? Number(m[1]) * (m[2] === "s" ? 1000 : 1) : Number.NaN;
        if (!(every >= 200 && every <= 3_600_000))
          throw new CliError(`--interval '${o.interval}': expected a duration from 200ms to 3600s`);
        const stop = interruptible();
        const tty = process.stdout.isTTY && format === "table";
        try {
          let first = true;
          while (!stop.signal.aborted) {
            const conns = await fetch();
            if (first && !tty && format === "table")
              process.stderr.write(`watching connections on ${agent.label} every ${o.interval}; Ctrl-C to stop\n`);
            first = false;
            const at = new Date().toISOString();
            if (stop.signal.aborted) break;
            if (format === "json") process.stdout.write(`${JSON.stringify({ at, connections: conns })}\n`);
            else if (format === "yaml") process.stdout.write(`---\n${stringify({ at, connections: conns })}`);
            else {
              const head = `${at}  ${conns.length} live connection${conns.length === 1 ? "" : "s"} on ${agent.label}${tty ? ` (every ${o.interval}; Ctrl-C to stop)` : ""}`;
              process.stdout.write(`${tty ? "\x1b[H\x1b[2J" : ""}${head}\n${renderConnections(conns)}\n${tty ? "" : "\n"}`);
            }
            await sleep(every, stop.signal);
          }
        } finally {
          stop.dispose();
        }
      }),
    );
}
