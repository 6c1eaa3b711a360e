/**
 * How `weft` finds and talks to the node's agent. The admin API listens on 127.0.0.1:15000 (in
 * the agent's network namespace) and on a unix socket, /run/weft/agent-<node>.sock, which also
 * reaches an agent living in another netns (the local cluster's nodes). In order:
 *   1. --agent <host:port | socket path>       2. --node <name>: /run/weft/agent-<name>.sock
 *   3. $WEFT_AGENT (as --agent)                4. 127.0.0.1:15000, when a weft agent answers there
 *   5. the only /run/weft/agent-*.sock present (several: say so and list them)
 * An unreachable agent is one line naming every address tried and how to check the agent.
 */
import { readdirSync } from "node:fs";
import { type ClientRequest, type IncomingMessage, request } from "node:http";
import { join } from "node:path";
import type { Command } from "commander";
import { CliError } from "../../common/cli-output.js";
import { durationMs } from "../../common/duration.js";
import { codeForStatus, errorMessage, isErrorCode } from "../../common/errors.js";
import { PORT_ADMIN } from "../../controller/api/constants.js";
import { defaultAdminSocket } from "../config.js";

/** Directory of the agents' admin sockets. */
export const SOCKET_DIR = "/run/weft";

/** Where an admin API listens. */
export type AgentAddress = { kind: "tcp"; host: string; port: number } | { kind: "unix"; path: string };

/** Options every agent-facing command takes. */
export interface AgentFlags {
  agent?: string;
  node?: string;
  timeout?: string;
}

/** What to do when the agent is not there. */
export const CHECK_HINT = "is `weft agent` running on this node? check its log, or run `weft check`";

/** One address tried and why it did not work. */
export interface Attempt {
  address: string;
  reason: string;
}

/** The agent could not be reached: the addresses tried and how to check. */
export class AgentUnreachableError extends CliError {
  constructor(readonly tried: readonly Attempt[]) {
    super(`cannot reach the weft agent's admin API at ${tried.map((t) => `${t.address} (${t.reason})`).join(" or ")}: ${CHECK_HINT}`);
  }
}

/** "host:port", "/path/to.sock", "unix:/path" → an address; throws naming the flag. */
export function parseAgentAddress(text: string, flag = "--agent"): AgentAddress {
  const t = text.trim();
  if (t.startsWith("unix:")) return { kind: "unix", path: t.slice(5) };
  if (t.startsWith("/") || t.startsWith(".") || t.endsWith(".sock")) return { kind: "unix", path: t };
  const m = /^\[?([^\]]*?)\]?:(\d{1,5})$/.exec(t);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535)
    throw new CliError(
      `${flag} '${text}': expected <host>:<port> (e.g. 127.0.0.1:15000) or a unix socket path (e.g. /run/weft/agent-node1.sock)`,
    );
  return { kind: "tcp", host: m[1] || "127.0.0.1", port: Number(m[2]) };
}

/** Human form of an address. */
export function formatAddress(a: AgentAddress): string {
  return a.kind === "unix" ? a.path : `${a.host.includes(":") ? `[${a.host}]` : a.host}:${a.port}`;
}

/** A failed connection attempt in words ("no such socket", "connection refused"). */
export function describeConnectError(e: NodeJS.ErrnoException): string {
  switch (e.code) {
    case "ENOENT":
      return "no such socket";
    case "ECONNREFUSED":
      return "connection refused";
    case "EACCES":
    case "EPERM":
      return "permission denied (run as root)";
    case "ETIMEDOUT":
      return "timed out";
    default:
      return e.message;
  }
}

/** A response read in full. */
export interface AgentResponse {
  status: number;
  body: string;
}

/** Talks HTTP/1.1 to one admin API. */
export class AgentClient {
  constructor(
    readonly address: AgentAddress,
    readonly timeoutMs = 5000,
  ) {}

  /** The address in words. */
  get label(): string {
    return formatAddress(this.address);
  }

  private open(method: string, path: string, onResponse: (res: IncomingMessage) => void): ClientRequest {
    const target = this.address.kind === "unix" ? { socketPath: this.address.path } : { host: this.address.host, port: this.address.port };
    return request({ ...target, method, path, headers: { accept: "application/json" } }, onResponse);
  }

  /** One request, read to the end; errors name the address. */
  send(method: string, path: string): Promise<AgentResponse> {
    return new Promise((resolve, reject) => {
      const req = this.open(method, path, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          body += c;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        res.on("error", (e) => reject(new CliError(`the agent at ${this.label} broke off its answer: ${e.message}`)));
      });
      req.setTimeout(this.timeoutMs, () =>
        req.destroy(Object.assign(new Error(`no answer within ${this.timeoutMs} ms`), { code: "ETIMEDOUT" })),
      );
      req.on("error", (e: NodeJS.ErrnoException) =>
        reject(new AgentUnreachableError([{ address: this.label, reason: describeConnectError(e) }])),
      );
      req.end();
    });
  }

  /** GET (or POST) a JSON endpoint; a non-2xx answer becomes the agent's error message. */
  async json<T>(path: string, method = "GET"): Promise<T> {
    const r = await this.send(method, path);
    let parsed: unknown;
    try {
      parsed = JSON.parse(r.body);
    } catch {
      throw new CliError(
        `the agent at ${this.label} answered ${path} with something that is not JSON (HTTP ${r.status}): is it a weft agent?`,
      );
    }
    if (r.status < 200 || r.status > 299) {
      const answer = parsed as { error?: string; code?: unknown } | null;
      const msg = answer?.error ?? `HTTP ${r.status}`;
      throw new CliError(`agent at ${this.label}: ${msg}`, 1, isErrorCode(answer?.code) ? answer.code : codeForStatus(r.status));
    }
    return parsed as T;
  }

  /**
   * Streams an NDJSON endpoint, calling onLine per parsed line, until the agent ends the stream
   * (resolves "ended"), the signal aborts (resolves "aborted"), or nothing arrives for idleMs
   * (keep-alives included: the agent sends one every 10 s) — then it rejects.
   */
  stream(path: string, onLine: (line: unknown) => void, signal: AbortSignal, idleMs = 35_000): Promise<"ended" | "aborted"> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const done = (fn: () => void) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener("abort", onAbort);
        fn();
      };
      const req = this.open("GET", path, (res) => {
        if ((res.statusCode ?? 0) !== 200) {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => {
            body += c;
          });
          res.on("end", () => {
            let msg = `HTTP ${res.statusCode}`;
            try {
              msg = (JSON.parse(body) as { error?: string }).error ?? msg;
            } catch {
              // keep the status
            }
            done(() => reject(new CliError(`agent at ${this.label}: ${msg}`)));
          });
          return;
        }
        let buf = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          buf += chunk;
          for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
            const line = buf.slice(0, i).trim();
            buf = buf.slice(i + 1);
            if (!line) continue;
            try {
              onLine(JSON.parse(line));
            } catch (e) {
              done(() => reject(e instanceof CliError ? e : new CliError(`bad line from the agent at ${this.label}: ${errorMessage(e)}`)));
              req.destroy();
              return;
            }
          }
        });
        res.on("end", () => done(() => resolve("ended")));
        res.on("error", () => undefined);
        res.on("close", () =>
          done(() =>
            signal.aborted ? resolve("aborted") : reject(new CliError(`the agent at ${this.label} closed the stream unexpectedly`)),
          ),
        );
      });
      req.setTimeout(idleMs, () =>
        req.destroy(Object.assign(new Error(`nothing from the agent for ${idleMs / 1000} s`), { code: "ETIMEDOUT" })),
      );
      req.on("error", (e: NodeJS.ErrnoException) => {
        if (signal.aborted) done(() => resolve("aborted"));
        else done(() => reject(new AgentUnreachableError([{ address: this.label, reason: describeConnectError(e) }])));
      });
      const onAbort = () => {
        done(() => resolve("aborted"));
        req.destroy();
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort);
      req.end();
    });
  }
}

/** Admin sockets present in a directory (agent-*.sock), sorted. */
export function listAgentSockets(dir = SOCKET_DIR): string[] {
  try {
    return readdirSync(dir)
      .filter((n) => /^agent-.+\.sock$/.test(n))
      .sort()
      .map((n) => join(dir, n));
  } catch {
    return [];
  }
}

/** The node name in an admin socket's file name. */
export function nodeOfSocket(path: string): string {
  return /agent-(.+)\.sock$/.exec(path)?.[1] ?? path;
}

/** What resolution needs from the machine (injectable for tests). */
export interface ResolveDeps {
  env: NodeJS.ProcessEnv;
  /** Resolves "ok" when a weft agent answers at the address, or a short reason it does not. */
  probe(a: AgentAddress): Promise<"ok" | string>;
  sockets(): string[];
}

/** Asks GET /status and checks it looks like a weft agent's. */
export async function probeAgent(a: AgentAddress, timeoutMs = 1500): Promise<"ok" | string> {
  try {
    const r = await new AgentClient(a, timeoutMs).send("GET", "/status");
    const body = JSON.parse(r.body) as { node?: unknown; version?: unknown };
    return r.status === 200 && typeof body.node === "string" && typeof body.version === "string"
      ? "ok"
      : "answers, but not as a weft agent's admin API";
  } catch (e) {
    if (e instanceof AgentUnreachableError) return e.tried[0]?.reason ?? "unreachable";
    return "answers, but not as a weft agent's admin API";
  }
}

const realDeps = (): ResolveDeps => ({ env: process.env, probe: (a) => probeAgent(a), sockets: () => listAgentSockets() });

/** Picks the agent to talk to (see the header for the order); throws one line when there is none. */
export async function resolveAgent(flags: AgentFlags, deps: ResolveDeps = realDeps()): Promise<AgentAddress> {
  if (flags.agent && flags.node) throw new CliError("--agent and --node are exclusive: name the agent by address or by node, not both");
  if (flags.agent) return parseAgentAddress(flags.agent);
  if (flags.node) {
    if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(flags.node)) throw new CliError(`--node '${flags.node}': not a valid node name`);
    return { kind: "unix", path: defaultAdminSocket(flags.node) };
  }
  if (deps.env.WEFT_AGENT) return parseAgentAddress(deps.env.WEFT_AGENT, "$WEFT_AGENT");
  const loopback: AgentAddress = { kind: "tcp", host: "127.0.0.1", port: PORT_ADMIN };
  const tcp = await deps.probe(loopback);
  if (tcp === "ok") return loopback;
  const sockets = deps.sockets();
  if (sockets.length === 1) return { kind: "unix", path: sockets[0] as string };
  if (sockets.length > 1)
    throw new CliError(
      `several agents' admin sockets are on this host (${sockets.join(", ")}) and none answers on ${formatAddress(loopback)}: choose one with --node <${sockets.map(nodeOfSocket).join("|")}> or --agent <path>`,
    );
  throw new AgentUnreachableError([
    { address: formatAddress(loopback), reason: tcp },
    { address: `${SOCKET_DIR}/agent-*.sock`, reason: "none present" },
  ]);
}

/** Parses --timeout ("5s", "500ms"). */
export function timeoutMs(text: string | undefined): number {
  if (!text) return 5000;
  const ms = durationMs(text);
  if (ms === null) throw new CliError(`--timeout '${text}': expected a duration such as 500ms or 5s`);
  if (ms < 100 || ms > 600_000) throw new CliError(`--timeout '${text}': must be between 100ms and 10m`);
  return ms;
}

/** A client for the resolved agent. */
export async function connectAgent(flags: AgentFlags, deps?: ResolveDeps): Promise<AgentClient> {
  const ms = timeoutMs(flags.timeout);
  return new AgentClient(await resolveAgent(flags, deps), ms);
}

/** Adds --agent, --node and --timeout to a command that talks to the agent. */
export function agentOptions(cmd: Command): Command {
  return cmd
    .option("--agent <address>", "the agent's admin API: <host>:<port> or a unix socket path (default: $WEFT_AGENT, else discovered)")
    .option("--node <name>", "the agent of node <name>, through its socket /run/weft/agent-<name>.sock")
    .option("--timeout <duration>", "how long to wait for the agent's answer", "5s");
}
