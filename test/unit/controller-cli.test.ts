import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command } from "commander";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { registerControllerCommands } from "../../controller/cli.js";

/** Runs `weft <args>` in-process and returns what it wrote to stdout and stderr. */
async function weft(args: string[]): Promise<{ out: string; err: string }> {
  const program = new Command().exitOverride();
  registerControllerCommands(program);
  let out = "";
  let err = "";
  const o = vi.spyOn(process.stdout, "write").mockImplementation((c) => {
    out += String(c);
    return true;
  });
  const e = vi.spyOn(process.stderr, "write").mockImplementation((c) => {
    err += String(c);
    return true;
  });
  try {
    await program.parseAsync(["node", "weft", ...args]);
  } finally {
    o.mockRestore();
    e.mockRestore();
    process.exitCode = 0;
  }
  return { out, err };
}

describe("weft controller subcommands take --state-dir before or after their name", () => {
  const dir = mkdtempSync(join(tmpdir(), "weft-ctl-cli-"));
  let server: Server;

  beforeAll(async () => {
    // A stand-in for a running controller's status socket in this state dir.
    server = createServer((req, res) => res.end(JSON.stringify({ path: req.url, from: "stand-in" })));
    await new Promise<void>((r) => server.listen(join(dir, "controller.sock"), r));
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  it("status reads the socket of the state dir named after the subcommand, and before it", async () => {
    for (const args of [
      ["controller", "status", "--state-dir", dir],
      ["controller", "--state-dir", dir, "status"],
    ]) {
      const r = await weft(args);
      expect(r.err, args.join(" ")).toBe("");
      expect(JSON.parse(r.out)).toEqual({ path: "/status", from: "stand-in" });
    }
  });

  it("status with a state dir that has no controller says which socket it tried", async () => {
    const other = join(dir, "none");
    const r = await weft(["controller", "status", "--state-dir", other]);
    expect(r.err).toContain(join(other, "controller.sock"));
  });

  it("token mints into the state dir given after the subcommand, not the parent's default", async () => {
    const r = await weft(["controller", "token", "--node", "n1", "--state-dir", dir]);
    const path = r.out.trim();
    expect(path).toBe(join(dir, "tokens", "n1.token"));
    expect(readFileSync(path, "utf8").length).toBeGreaterThan(16);
  });
});
