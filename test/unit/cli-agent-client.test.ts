import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  AgentClient,
  AgentUnreachableError,
  listAgentSockets,
  parseAgentAddress,
  type ResolveDeps,
  resolveAgent,
  timeoutMs,
} from "../../agent/cli/agent-client.js";
import { AdminServer, type AdminStream } from "../../common/admin-server.js";
import { waitFor } from "../helpers/wait.js";

const dir = mkdtempSync(join(tmpdir(), "weft-cli-client-"));
const log = pino({ level: "silent" });

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("parseAgentAddress", () => {
  it.each([
    ["127.0.0.1:15000", { kind: "tcp", host: "127.0.0.1", port: 15000 }],
    [":15000", { kind: "tcp", host: "127.0.0.1", port: 15000 }],
    ["[::1]:15000", { kind: "tcp", host: "::1", port: 15000 }],
    ["/run/weft/agent-n1.sock", { kind: "unix", path: "/run/weft/agent-n1.sock" }],
    ["unix:/tmp/x", { kind: "unix", path: "/tmp/x" }],
    ["agent.sock", { kind: "unix", path: "agent.sock" }],
  ])("%s", (text, want) => expect(parseAgentAddress(text)).toEqual(want));

  it("names the flag and the forms on bad input", () => {
    expect(() => parseAgentAddress("localhost")).toThrow(/--agent 'localhost': expected <host>:<port> .* or a unix socket path/);
    expect(() => parseAgentAddress("h:99999", "$WEFT_AGENT")).toThrow(/\$WEFT_AGENT 'h:99999'/);
  });

  it("parses --timeout with bounds", () => {
    expect(timeoutMs(undefined)).toBe(5000);
    expect(timeoutMs("1.5s")).toBe(1500);
    expect(() => timeoutMs("soon")).toThrow(/--timeout 'soon': expected a duration/);
    expect(() => timeoutMs("1ms")).toThrow(/between 100ms and 10m/);
  });
});

describe("resolveAgent", () => {
  const deps = (over: Partial<ResolveDeps> = {}): ResolveDeps => ({
    env: {},
    probe: async () => "connection refused",
    sockets: () => [],
    ...over,
  });

  it("prefers --agent, then --node, then $WEFT_AGENT, and never probes then", async () => {
    const never = deps({
      probe: async () => {
        throw new Error("probed");
      },
    });
    expect(await resolveAgent({ agent: "10.0.0.1:15000" }, never)).toEqual({ kind: "tcp", host: "10.0.0.1", port: 15000 });
    expect(await resolveAgent({ node: "n1" }, never)).toEqual({ kind: "unix", path: "/run/weft/agent-n1.sock" });
    expect(await resolveAgent({}, { ...never, env: { WEFT_AGENT: "/x.sock" } })).toEqual({ kind: "unix", path: "/x.sock" });
    await expect(resolveAgent({ agent: "a:1", node: "n1" }, never)).rejects.toThrow(/exclusive/);
    await expect(resolveAgent({ node: "Bad_Name" }, never)).rejects.toThrow(/--node 'Bad_Name': not a valid node name/);
  });

  it("uses 127.0.0.1:15000 when a weft agent answers there", async () => {
    expect(await resolveAgent({}, deps({ probe: async () => "ok", sockets: () => ["/run/weft/agent-a.sock"] }))).toEqual({
      kind: "tcp",
      host: "127.0.0.1",
      port: 15000,
    });
  });

  it("falls back to the only socket; with several, lists them and the flags to choose", async () => {
    expect(await resolveAgent({}, deps({ sockets: () => ["/run/weft/agent-a.sock"] }))).toEqual({
      kind: "unix",
      path: "/run/weft/agent-a.sock",
    });
    await expect(resolveAgent({}, deps({ sockets: () => ["/run/weft/agent-a.sock", "/run/weft/agent-b.sock"] }))).rejects.toThrow(
      /several agents' admin sockets .*agent-a\.sock, .*agent-b\.sock.*--node <a\|b> or --agent <path>/,
    );
  });

  it("with nothing there, one line naming every address tried and how to check the agent", async () => {
    const e = await resolveAgent({}, deps()).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(AgentUnreachableError);
    expect((e as Error).message).toBe(
      "cannot reach the weft agent's admin API at 127.0.0.1:15000 (connection refused) or /run/weft/agent-*.sock (none present): is `weft agent` running on this node? check its log, or run `weft check`",
    );
    expect((e as Error).message).not.toContain("\n");
  });

  it("lists only agent-*.sock files", () => {
    const d = mkdtempSync(join(dir, "socks-"));
    for (const f of ["agent-n2.sock", "agent-n1.sock", "controller.sock", "agent-x.json"]) writeFileSync(join(d, f), "");
    expect(listAgentSockets(d)).toEqual([join(d, "agent-n1.sock"), join(d, "agent-n2.sock")]);
    expect(listAgentSockets(join(d, "missing"))).toEqual([]);
  });
});

describe("AgentClient against the admin server", () => {
  const socket = join(dir, "agent.sock");
  const admin = new AdminServer(log, { streamKeepAliveMs: 50 });
  const streams: AdminStream[] = [];
  let closed = 0;

  beforeAll(async () => {
    admin.register("/status", () => ({ json: { node: "n1", version: "1" } }));
    admin.register("/fail", () => ({ status: 409, json: { error: "pod x runs on node n2" } }));
    admin.register("/text", () => ({ text: "hello\n" }));
    admin.register("/slow", () => new Promise((r) => setTimeout(() => r({ json: {} }), 2000)));
    admin.register("/stream", (req) => ({
      stream: (out) => {
        streams.push(out);
        out.onClose(() => closed++);
        out.send({ type: "start" });
        const n = Number(req.url.searchParams.get("n") ?? 0);
        for (let i = 0; i < n; i++) out.send({ type: "event", i });
        if (req.url.searchParams.get("end")) out.end({ type: "end", reason: "done" });
      },
    }));
    await admin.listenUnix(socket);
  });
  afterAll(async () => {
    await admin.close();
  });
  afterEach(() => {
    streams.length = 0;
  });

  it("reads JSON, and turns an error status into the agent's own message", async () => {
    const c = new AgentClient({ kind: "unix", path: socket });
    expect(await c.json("/status")).toEqual({ node: "n1", version: "1" });
    await expect(c.json("/fail")).rejects.toThrow(`agent at ${socket}: pod x runs on node n2`);
    await expect(c.json("/text")).rejects.toThrow(/not JSON \(HTTP 200\): is it a weft agent\?/);
    await expect(c.json("/nope")).rejects.toThrow(/no admin endpoint \/nope/);
  });

  it("names the address and the reason when nothing answers, and gives up after its timeout", async () => {
    await expect(new AgentClient({ kind: "unix", path: join(dir, "missing.sock") }).json("/status")).rejects.toThrow(
      /at .*missing\.sock \(no such socket\): is `weft agent` running/,
    );
    // A socket file nobody listens on (an agent that was killed): connection refused.
    const stale = join(dir, "stale.sock");
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(stale, r));
    await new Promise<void>((r) => srv.close(() => r()));
    writeFileSync(stale, "");
    await expect(new AgentClient({ kind: "unix", path: stale }).json("/status")).rejects.toThrow(/stale\.sock \(connection refused\)/);
    await expect(new AgentClient({ kind: "unix", path: socket }, 200).json("/slow")).rejects.toThrow(/\(timed out\)/);
  });

  it("streams NDJSON lines until the agent ends the stream", async () => {
    const lines: unknown[] = [];
    const how = await new AgentClient({ kind: "unix", path: socket }).stream(
      "/stream?n=3&end=1",
      (l) => lines.push(l),
      new AbortController().signal,
    );
    expect(how).toBe("ended");
    expect(lines).toEqual([
      { type: "start" },
      { type: "event", i: 0 },
      { type: "event", i: 1 },
      { type: "event", i: 2 },
      { type: "end", reason: "done" },
    ]);
  });

  it("sends keep-alives on an idle stream, and the server sees the client go away", async () => {
    const before = closed;
    const ctl = new AbortController();
    const lines: { type: string }[] = [];
    const done = new AgentClient({ kind: "unix", path: socket }).stream("/stream", (l) => lines.push(l as { type: string }), ctl.signal);
    await waitFor("two keep-alives", () => lines.filter((l) => l.type === "keepalive").length >= 2, 3000);
    ctl.abort();
    expect(await done).toBe("aborted");
    await waitFor("server-side cleanup", () => closed === before + 1, 3000);
    expect(streams[0]?.closed).toBe(true);
  });

  it("drops lines for a client that stops reading instead of buffering without bound", async () => {
    let sent = 0;
    let refused = 0;
    admin.register("/flood", () => ({
      stream: (out) => {
        const big = "x".repeat(64 * 1024);
        // Far more than the 1 MiB backlog, written without waiting: the excess is refused.
        for (let i = 0; i < 200; i++) {
          if (out.send({ big })) sent++;
          else refused++;
        }
        out.end();
      },
    }));
    const ctl = new AbortController();
    await new AgentClient({ kind: "unix", path: socket }).stream("/flood", () => undefined, ctl.signal);
    expect(refused).toBeGreaterThan(0);
    expect(sent).toBeLessThan(200);
  });

  it("ends open streams with a reason when the agent shuts down", async () => {
    const other = new AdminServer(log);
    const path = join(dir, "closing.sock");
    other.register("/tap", () => ({ stream: (out) => out.send({ type: "start" }) }));
    await other.listenUnix(path);
    const lines: { type: string; reason?: string }[] = [];
    const done = new AgentClient({ kind: "unix", path }).stream(
      "/tap",
      (l) => lines.push(l as { type: string }),
      new AbortController().signal,
    );
    await waitFor("stream started", () => lines.length === 1, 3000);
    await other.close();
    expect(await done).toBe("ended");
    expect(lines.at(-1)).toEqual({ type: "end", reason: "the agent is shutting down" });
  });

  it("reports a refused stream with the agent's message", async () => {
    await expect(
      new AgentClient({ kind: "unix", path: socket }).stream("/fail", () => undefined, new AbortController().signal),
    ).rejects.toThrow(/pod x runs on node n2/);
  });
});
