/**
 * `weft up` / `weft down`: the README's first command. Creates the local cluster, starts the
 * controller and one agent per node, deploys Bookinfo in an enrolled namespace with traffic, checks
 * that requests flow through the mesh, and says what to try next.
 */
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Command } from "commander";
import { action, CliError, intOption } from "../common/cli-output.js";
import { errorMessage } from "../common/errors.js";
import { defaultClusterName } from "./cluster/cli.js";
import { clusterDown, clusterUp, requireState } from "./cluster/cluster.js";
import { agentSocket, startMesh } from "./cluster/mesh.js";
import { execArgv, resolvePlace } from "./cluster/processes.js";
import { loadState, stateDir } from "./cluster/state.js";
import { DEFAULT_SPEC, MAX_NODES } from "./cluster/topology.js";
import { BOOKINFO_NS, BOOKINFO_PORT, deployBookinfo } from "./demo/bookinfo.js";

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** What is being done now (stderr, so a script reading stdout sees only results). */
function progress(line: string): void {
  process.stderr.write(`… ${line}\n`);
}

/** curl inside a pod (its netns and cgroup, so it is captured like the app's own calls). */
function curlInPod(cluster: string, pod: string, url: string): { code: number; body: string } {
  const state = requireState(cluster);
  const [cmd, ...args] = execArgv(state, resolvePlace(state, pod), ["curl", "-s", "-m", "3", "-w", "\n%{http_code}", url]);
  const r = spawnSync(cmd as string, args, { encoding: "utf8", timeout: 10_000 });
  const lines = (r.stdout ?? "").trimEnd().split("\n");
  const code = Number(lines.pop() ?? "0");
  return { code, body: lines.join("\n") };
}

/** The reviews version a productpage body says answered, or undefined (not a page, or no answer). */
function reviewsVersion(body: string): string | undefined {
  try {
    const v = (JSON.parse(body) as { reviews?: { version?: unknown } }).reviews?.version;
    return typeof v === "string" ? v : undefined;
  } catch {
    return undefined;
  }
}

async function waitForTraffic(cluster: string, url: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last = { code: 0, body: "" };
  while (Date.now() < deadline) {
    last = curlInPod(cluster, `${BOOKINFO_NS}/traffic`, url);
    // A whole page: productpage answers 200 even when its own reviews call failed (a pod still
    // starting), and "traffic flowing" should mean the mesh carried every hop.
    if (last.code === 200 && reviewsVersion(last.body) !== undefined) return last.body;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(
    `productpage did not answer through the mesh within ${timeoutMs} ms (last: HTTP ${last.code} ${last.body.slice(0, 200)})`,
  );
}

/** Registers `weft up` and `weft down`. */
export function registerUpCommands(program: Command): void {
  program
    .command("up")
    .description("bring up the local mesh: cluster on network namespaces, controller, agents, Bookinfo with traffic")
    .option("--name <name>", "cluster name", defaultClusterName())
    .option("--nodes <n>", "number of nodes", intOption("--nodes", 1, MAX_NODES), DEFAULT_SPEC.nodes)
    .option("--proxy-workers <n>", "proxy worker threads per agent (0: in the agent's thread)", intOption("--proxy-workers", 0, 16), 0)
    .option("--no-demo", "skip Bookinfo and its traffic")
    .action(
      action(async (o) => {
        if (loadState(o.name))
          throw new CliError(
            `the local mesh '${o.name}' is already up; 'weft down${o.name === "weft" ? "" : ` --name ${o.name}`}' removes it`,
          );
        const started = Date.now();
        progress(`creating cluster '${o.name}': ${o.nodes} node network namespaces, the fabric bridge, cgroups`);
        const state = await clusterUp({ ...DEFAULT_SPEC, name: o.name, nodes: o.nodes, podsPerNode: 0 });
        say(`cluster '${o.name}': ${state.nodes.length} nodes on network namespaces (no route outside the machine)`);
        try {
          progress("starting the controller and one agent per node (eBPF capture, certificates)");
          await startMesh(o.name, { proxyWorkers: o.proxyWorkers });
          say(`controller on ${"10.250.0.1"}:15012 and ${state.nodes.length} agents ready (capture attached, certificates held)`);
          if (o.demo) {
            progress("deploying Bookinfo and waiting for its first page through the mesh");
            await deployBookinfo(o.name);
            const vip = requireState(o.name).services.find((s) => s.namespace === BOOKINFO_NS && s.name === "productpage")?.vip;
            const page = await waitForTraffic(o.name, `http://${vip}:${BOOKINFO_PORT}/productpage`, 30_000);
            const reviews = reviewsVersion(page) ?? "?";
            say(
              `bookinfo deployed in namespace '${BOOKINFO_NS}' (labelled weft.dev/mesh=enabled); traffic flowing (reviews ${reviews} answered)`,
            );
          }
        } catch (e) {
          const saved = mkdtempSync(join(tmpdir(), "weft-up-failed-"));
          try {
            cpSync(join(stateDir(o.name), "logs"), saved, { recursive: true });
          } catch {
            // no logs yet
          }
          await clusterDown(o.name).catch(() => undefined);
          throw new Error(`${errorMessage(e)}\n  logs saved in ${saved}; everything created was removed`);
        }
        const s = requireState(o.name);
        const vip = (name: string) => s.services.find((x) => x.namespace === BOOKINFO_NS && x.name === name)?.vip ?? "?";
        const n = o.name === "weft" ? "" : ` --name ${o.name}`;
        say(
          [
            `up in ${((Date.now() - started) / 1000).toFixed(1)} s.`,
            "",
            "Try:",
            `  weft cluster status${n}                                              # nodes, pods, services, processes`,
            ...(o.demo
              ? [
                  `  weft cluster exec${n} bookinfo/traffic -- curl -s http://${vip("productpage")}:${BOOKINFO_PORT}/productpage   # through the mesh`,
                  `  weft cluster exec${n} legacy/client -- curl -s http://${vip("details")}:${BOOKINFO_PORT}/details/0            # from outside the mesh`,
                  `  weft cluster apply${n} -n bookinfo -f test/fixtures/istio/destination-rule-all.yaml        # L7: subsets, then`,
                  `  weft cluster apply${n} -n bookinfo -f test/fixtures/istio/virtual-service-reviews-90-10.yaml   # reviews 90/10`,
                  `  weft cluster apply${n} -f docs/examples/bookinfo-strict.yaml      # then the legacy call is refused`,
                  `  weft cluster apply${n} -f docs/examples/deny-traffic-to-ratings.yaml`,
                  `  weft cluster label${n} namespace bookinfo weft.dev/mesh-           # leave the mesh, no restart`,
                ]
              : []),
            `  weft cluster exec${n} node1 -- curl -s localhost:15020/metrics | grep istio_tcp`,
            `  tail -f ${join(stateDir(o.name), "logs")}/agent_${o.name}-node1.log   # access logs`,
            `  admin API of node 1's agent: unix socket ${agentSocket(o.name, 1)}`,
            `  weft down${n}`,
          ].join("\n"),
        );
      }),
    );
  program
    .command("down")
    .description("tear the local mesh down, leaving nothing behind")
    .option("--name <name>", "cluster name", defaultClusterName())
    .action(
      action(async (o) => {
        const r = await clusterDown(o.name);
        say(`weft: removed ${r.netns.length} netns, ${r.cgroups.length} cgroup trees, ${r.pins.length} pins, ${r.processes} processes`);
        if (r.problems.length) throw new CliError(`cleanup incomplete:\n  ${r.problems.join("\n  ")}`);
      }),
    );
}
