/**
 * `weft check`'s port check: are weft's ports free, or held by the agent? Listening sockets come
 * from /proc/<pid>/net/tcp{,6} — read through the agent's pid when it is known, which shows the
 * agent's own network namespace — and their owners from the socket inodes under /proc/<pid>/fd.
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import {
  PORT_ADMIN,
  PORT_HBONE,
  PORT_INBOUND_PLAINTEXT,
  PORT_METRICS,
  PORT_OUTBOUND,
  PORT_READINESS,
} from "../../controller/api/constants.js";
import type { CheckResult } from "./check-node.js";

/** weft's ports and what each is for. */
export const WEFT_PORTS: readonly { port: number; role: string }[] = [
  { port: PORT_ADMIN, role: "admin API" },
  { port: PORT_OUTBOUND, role: "outbound capture" },
  { port: PORT_INBOUND_PLAINTEXT, role: "inbound plaintext" },
  { port: PORT_HBONE, role: "HBONE mTLS tunnels" },
  { port: PORT_METRICS, role: "Prometheus metrics" },
  { port: PORT_READINESS, role: "readiness" },
];

/** A listening TCP socket. */
export interface Listener {
  address: string;
  port: number;
  inode: string;
}

function hexV4(h: string): string {
  const n = Number.parseInt(h, 16);
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff].join(".");
}

function hexV6(h: string): string {
  if (/^0+$/.test(h)) return "::";
  // Four 32-bit words, each in host (little-endian) byte order.
  const bytes: string[] = [];
  for (let w = 0; w < 4; w++) {
    const word = h.slice(w * 8, w * 8 + 8);
    for (let b = 3; b >= 0; b--) bytes.push(word.slice(b * 2, b * 2 + 2));
  }
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(Number.parseInt(`${bytes[i]}${bytes[i + 1]}`, 16).toString(16));
  return groups.join(":");
}

/** LISTEN sockets in /proc/net/tcp or tcp6 text. */
export function parseListeners(text: string, v6: boolean): Listener[] {
  const out: Listener[] = [];
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || f[3] !== "0A") continue;
    const [addr, port] = (f[1] as string).split(":");
    if (!addr || !port) continue;
    out.push({ address: v6 ? hexV6(addr) : hexV4(addr), port: Number.parseInt(port, 16), inode: f[9] as string });
  }
  return out;
}

/** Listening sockets in the network namespace of pid ("self" for this process's). */
export function listeners(pid: number | "self" = "self"): Listener[] {
  const read = (f: string) => {
    try {
      return readFileSync(`/proc/${pid}/net/${f}`, "utf8");
    } catch {
      return "";
    }
  };
  return [...parseListeners(read("tcp"), false), ...parseListeners(read("tcp6"), true)];
}

/** A process holding a socket. */
export interface Owner {
  pid: number;
  command: string;
}

/** Finds the processes holding these socket inodes (a scan of /proc/<pid>/fd, stopped once all are found). */
export function socketOwners(inodes: ReadonlySet<string>): Map<string, Owner> {
  const found = new Map<string, Owner>();
  if (inodes.size === 0) return found;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${entry}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let link: string;
      try {
        link = readlinkSync(`/proc/${entry}/fd/${fd}`);
      } catch {
        continue;
      }
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (!m || !inodes.has(m[1] as string) || found.has(m[1] as string)) continue;
      let command = "?";
      try {
        command = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").filter(Boolean).join(" ");
      } catch {
        // gone
      }
      found.set(m[1] as string, { pid: Number(entry), command });
    }
    if (found.size === inodes.size) break;
  }
  return found;
}

/** True when a command line is a weft agent's. */
export function isWeftAgent(command: string): boolean {
  return /\bweft\b|dist\/agent\/cli\/main\.js/.test(command) && /\sagent(\s|$)/.test(command);
}

/**
 * One result per port: free, held by the agent (fine), or held by something else (fail). `where`
 * says which network namespace was looked at.
 */
export function portChecks(
  found: readonly Listener[],
  owners: Map<string, Owner>,
  agentPid: number | undefined,
  where: string,
): CheckResult[] {
  return WEFT_PORTS.map(({ port, role }) => {
    const name = `port ${port}`;
    const held = found.filter((l) => l.port === port);
    if (held.length === 0) return { category: "ports", name, status: "pass", detail: `free (${role}; ${where})` };
    const who = held.map((l) => ({ l, o: owners.get(l.inode) }));
    const foreign = who.filter(({ o }) => !o || (o.pid !== agentPid && !isWeftAgent(o.command)));
    const at = (l: Listener) => `${l.address.includes(":") ? `[${l.address}]` : l.address}:${l.port}`;
    if (foreign.length === 0)
      return {
        category: "ports",
        name,
        status: "pass",
        detail: `held by the weft agent (pid ${[...new Set(who.map(({ o }) => o?.pid))].join(",")}) on ${held.map(at).join(", ")} (${role})`,
      };
    if (foreign.every(({ o }) => !o))
      return {
        category: "ports",
        name,
        status: "warn",
        detail: `in use on ${foreign.map(({ l }) => at(l)).join(", ")} by a process this user cannot see (the agent's, or another's)`,
        fix: "run weft check as root to see which process holds it",
      };
    const desc = foreign
      .map(({ l, o }) => `${o ? `pid ${o.pid} (${o.command.slice(0, 80)})` : "an unknown process"} on ${at(l)}`)
      .join("; ");
    return {
      category: "ports",
      name,
      status: "fail",
      detail: `in use by ${desc}: the agent needs it for the ${role}`,
      fix: `stop or move that process (ss -ltnp 'sport = :${port}' shows it)`,
    };
  });
}
