/**
 * The weft mesh as a measured path: THE PLUG POINT for the mesh rows.
 *
 * Until this variant's setup is written, `unavailable()` returns a reason and every benchmark
 * lists the weft rows as "not run (variant not available: …)"; the direct and HAProxy rows
 * and their ratios are unaffected. To plug the mesh in, implement setup/teardown and make
 * `unavailable()` return null (or a reason only when a prerequisite is really missing):
 *
 *   setup(ctx):
 *     1. Enrol the variant's own pods: `await ctx.cluster.labelNamespace(ctx.client.namespace,
 *        ["weft.dev/mesh=enabled"])` (client and server share the namespace `bench-weft`; the
 *        direct and HAProxy pods live in other, unenrolled namespaces, so they are never captured).
 *     2. Start the controller in the fabric and one agent per node, each with
 *        `ctx.cluster.detach(place, argv, what)` (agents go to "node1"/"node2": the node's system
 *        cgroup, outside the hooked pod cgroup), configs under `ctx.workDir`.
 *     3. Wait until capture is in place on node 1 and the server's identity is served on node 2
 *        (the harness then fetches the 1 KiB body through the target and fails the variant
 *        if it does not arrive).
 *     4. Return `{ target: { host: ctx.server.ip, port: ctx.serverPort }, proxyPids: [agent on
 *        node 1, agent on node 2], info: {...} }`: the client dials the pod IP and capture
 *        carries it through HBONE; the agents' CPU (all their threads, workers included) and
 *        RSS are the mesh's cost. The controller is control plane, not a per-request cost.
 *   teardown(): stop what setup started (`ctx.cluster.stop(proc)`), remove the label; it may run
 *     after a partial setup, and the memory benchmark calls setup/teardown more than once.
 */
import type { BenchVariant } from "../lib/variant.js";

/** Why the weft rows are not run yet; shown in every table's weft row. */
export const WEFT_NOT_WIRED = "variant not available: the mesh (controller + agents) is not wired into bench/variants/weft.ts yet";

/** A fresh weft variant. */
export function weftVariant(): BenchVariant {
  return {
    name: "weft",
    title: "weft L4 (HBONE)",
    unavailable: () => WEFT_NOT_WIRED,
    async setup() {
      throw new Error(WEFT_NOT_WIRED);
    },
    async teardown() {},
  };
}
