/**
 * Privileged tests (netns, cgroups, BPF) run as root. Under CI=true they must run: a non-root CI
 * run fails loudly instead of skipping. Outside CI a non-root run skips them with a warning.
 */
import { describe, it } from "vitest";

/** True when running as root. */
export const IS_ROOT = typeof process.getuid === "function" && process.getuid() === 0;
/** True under CI (CI=true or CI=1). */
export const IN_CI = process.env.CI === "true" || process.env.CI === "1";

/** describe() for tests that need root. */
export function describePrivileged(name: string, fn: () => void): void {
  if (IS_ROOT) {
    describe(name, fn);
    return;
  }
  if (IN_CI) {
    describe(name, () => {
      it("runs as root under CI", () => {
        throw new Error(`'${name}' needs root and CI=true forbids skipping it: run the tests as root`);
      });
    });
    return;
  }
  console.warn(`\n!!! SKIPPING privileged tests '${name}': not root. These test the real data path; run as root. !!!\n`);
  describe.skip(name, fn);
}
