/** weft's version, read from package.json whether running from dist/ or from the sources. */
import { readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

function findPackageJson(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, "package.json");
    // statSync, not existsSync: access(2) checks the real uid, which can differ from the effective one.
    if (statSync(candidate, { throwIfNoEntry: false })?.isFile()) return candidate;
    dir = dirname(dir);
  }
  throw new Error("package.json not found above the weft installation");
}

/** Root directory of the weft installation (where package.json is). */
export const WEFT_ROOT = dirname(findPackageJson());

/** weft's version string. */
export const VERSION: string = (JSON.parse(readFileSync(join(WEFT_ROOT, "package.json"), "utf8")) as { version: string }).version;
