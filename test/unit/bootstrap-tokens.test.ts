import { mkdtempSync, readFileSync, rmSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BootstrapTokens } from "../../controller/ca/node-auth.js";

describe("bootstrap tokens", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "weft-tokens-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const age = (path: string, ms: number) => {
    const t = (Date.now() - ms) / 1000;
    utimesSync(path, t, t);
  };

  it("authenticates a minted token, refuses it once revoked", async () => {
    const tokens = new BootstrapTokens(dir, 10_000);
    const path = tokens.ensure("n1");
    const t = readFileSync(path, "utf8").trim();
    expect(await tokens.authenticate(t)).toEqual({ node: "n1", via: "bootstrap token" });
    tokens.revoke("n1");
    await expect(tokens.authenticate(t)).rejects.toThrow(/unknown bootstrap token|revoked/);
  });

  it("refuses an expired token and rotates one past half its life", async () => {
    const tokens = new BootstrapTokens(dir, 10_000);
    const path = tokens.ensure("n1");
    const old = readFileSync(path, "utf8").trim();
    age(path, 20_000);
    await expect(tokens.authenticate(old)).rejects.toThrow(/bootstrap token of node n1 expired/);
    tokens.ensure("n1"); // past half life: replaced
    const fresh = readFileSync(path, "utf8").trim();
    expect(fresh).not.toBe(old);
    expect((await tokens.authenticate(fresh)).node).toBe("n1");
    await expect(tokens.authenticate(old)).rejects.toThrow(/unknown bootstrap token/);
    // A young token is kept as it is.
    tokens.ensure("n1");
    expect(readFileSync(path, "utf8").trim()).toBe(fresh);
  });
});
