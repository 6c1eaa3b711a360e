/** The admin HTTP server (agent and controller): paths, errors, TCP on loopback and a unix socket. */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { AdminServer, adminGet, adminRequest } from "../../common/admin-server.js";
import { captureLogger } from "../helpers/control-log.js";

describe("admin server", () => {
  const dir = mkdtempSync(join(tmpdir(), "weft-admin-"));
  const cap = captureLogger("admin");
  const admin = new AdminServer(cap.log);
  const sock = join(dir, "admin.sock");
  afterAll(async () => {
    await admin.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("serves registered paths as JSON or text over a unix socket and loopback TCP", async () => {
    admin.register("/hello", ({ url }) => ({ json: { name: url.searchParams.get("name") } }), { description: "greets" });
    admin.register("/text", () => ({ text: "plain\n" }));
    admin.register("/echo", ({ body }) => ({ json: { body } }), { methods: ["POST"] });
    admin.register("/boom", () => {
      throw new Error("handler broke");
    });
    expect(() => admin.register("/hello", () => ({}))).toThrow(/already registered/);
    await admin.listenUnix(sock);
    const tcp = await admin.listenTcp("127.0.0.1", 0);
    expect(JSON.parse((await adminGet(sock, "/hello?name=weft")).body)).toEqual({ name: "weft" });
    expect((await adminGet(sock, "/text")).body).toBe("plain\n");
    expect(JSON.parse((await adminRequest(sock, "POST", "/echo", "hi")).body)).toEqual({ body: "hi" });
    const index = JSON.parse((await adminGet(sock, "/")).body) as { endpoints: { path: string }[] };
    expect(index.endpoints.map((e) => e.path)).toEqual(["/", "/boom", "/echo", "/hello", "/text"]);
    const r = await fetch(`http://127.0.0.1:${tcp.port}/hello?name=tcp`);
    expect(await r.json()).toEqual({ name: "tcp" });
  });

  it("takes changes over TCP only with its own address as Host and no Origin (DNS rebinding, cross-site forms)", async () => {
    const { request } = await import("node:http");
    const tcp = await admin.listenTcp("127.0.0.1", 0);
    const post = (headers: Record<string, string>) =>
      new Promise<number>((resolve, reject) => {
        const req = request({ host: "127.0.0.1", port: tcp.port, path: "/echo", method: "POST", headers }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on("error", reject);
        req.end("x");
      });
    expect(await post({ host: `127.0.0.1:${tcp.port}` })).toBe(200);
    expect(await post({ host: `localhost:${tcp.port}` })).toBe(200);
    expect(await post({ host: `rebound.example:${tcp.port}` })).toBe(403);
    expect(await post({ host: `127.0.0.1:${tcp.port}`, origin: "http://evil.example" })).toBe(403);
    // The unix socket is the CLI's way and needs neither.
    expect((await adminRequest(sock, "POST", "/echo", "hi")).status).toBe(200);
  });

  it("answers unknown paths, wrong methods and failing handlers with a clear JSON error", async () => {
    const missing = await adminGet(sock, "/nope");
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body)).toMatchObject({
      error: "no admin endpoint /nope",
      code: "WEFT_NOT_FOUND",
      endpoints: expect.arrayContaining(["/hello"]),
    });
    const wrong = await adminRequest(sock, "DELETE", "/hello");
    expect(wrong.status).toBe(405);
    expect(JSON.parse(wrong.body)).toEqual({ error: "DELETE is not allowed on /hello; use GET", code: "WEFT_INVALID_INPUT" });
    const boom = await adminGet(sock, "/boom");
    expect(boom.status).toBe(500);
    // An uncoded throw is a bug as far as the caller can tell.
    expect(JSON.parse(boom.body)).toEqual({ error: "handler broke", code: "WEFT_INTERNAL" });
    expect(cap.find(/admin handler failed/)).toHaveLength(1);
    // Still serving after all that.
    expect((await adminGet(sock, "/text")).status).toBe(200);
  });

  it("replaces a stale socket file, refuses one in use, and says when nothing listens", async () => {
    const stale = join(dir, "stale.sock");
    writeFileSync(stale, "");
    const other = new AdminServer(cap.log);
    await other.listenUnix(stale);
    await expect(new AdminServer(cap.log).listenUnix(stale)).rejects.toThrow(/is in use by another process/);
    await other.close();
    await expect(adminGet(join(dir, "none.sock"), "/")).rejects.toThrow(/no agent admin API at .*none.sock \(is the agent running\?\)/);
  });
});
