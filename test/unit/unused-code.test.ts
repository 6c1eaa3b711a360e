import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..", "..");

describe("unused code", () => {
  // knip reads the sources and node_modules only: no network. knip.json says what is an entry.
  it("knip finds no unused file, export, dependency or binary", () => {
    const r = spawnSync(process.execPath, [join(ROOT, "node_modules", "knip", "bin", "knip.js"), "--no-progress", "--no-config-hints"], {
      cwd: ROOT,
      encoding: "utf8",
      timeout: 120_000,
    });
    expect(r.stdout + r.stderr).toBe("");
    expect(r.status).toBe(0);
  }, 150_000);
});
