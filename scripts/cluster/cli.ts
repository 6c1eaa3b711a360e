/** `weft cluster …`: the local multi-node cluster on network namespaces. */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { parseAllDocuments } from "yaml";
import { action, CliError, emit, intOption, parseFormat, parseLabels, table } from "../../common/cli-output.js";
import { netnsExists } from "../../native/netns.js";
import { isSameProcess } from "../../native/proc.js";
import { addPod, addService, clusterDown, clusterUp, label, removePod, removeService, requireState, runDetached } from "./cluster.js";
import { execArgv, resolvePlace } from "./processes.js";
import type { ServicePort } from "./state.js";
import { DEFAULT_SPEC, MAX_NODES, MAX_PODS_PER_NODE } from "./topology.js";
import { applyUserObjects, deleteUserObjects } from "./user-objects.js";

/** Default cluster name: WEFT_CLUSTER or "weft". */
export function defaultClusterName(): string {
  return process.env.WEFT_CLUSTER ?? DEFAULT_SPEC.name;
}

/** Registers `weft cluster` and its subcommands. */
export function registerClusterCommands(program: Command): void {
  const cluster = program.command("cluster").description("local multi-node cluster on network namespaces (the test bed)");
  const nameOpt = ["--name <name>", "cluster name (prefix of every netns/cgroup/pin)", defaultClusterName()] as const;

  cluster
    .command("up")
    .description("create nodes and pods as network namespaces, cgroups and veths")
    .option(...nameOpt)
    .option("--nodes <n>", "number of nodes", intOption("--nodes", 1, MAX_NODES), DEFAULT_SPEC.nodes)
    .option("--pods-per-node <n>", "generic pods per node", intOption("--pods-per-node", 0, MAX_PODS_PER_NODE), DEFAULT_SPEC.podsPerNode)
    .option("--node-cidr <cidr>", "node network (/24)", DEFAULT_SPEC.nodeCidr)
    .option("--pod-cidr <cidr>", "pod network (/16, a /24 per node)", DEFAULT_SPEC.podCidr)
    .option("--service-cidr <cidr>", "service VIP range", DEFAULT_SPEC.serviceCidr)
    .option(
      "--store <dir>",
      "file store directory the controller watches (default <state>/store); the controller runs as uid 65532 and must be able to read it",
    )
    .option(
      "--cgroup-layout <layout>",
      "pod cgroups as weft lays them out (local) or as the kubelet's systemd driver does (kubelet-systemd)",
      "local",
    )
    .action(
      action(async (o) => {
        process.stderr.write(
          `creating cluster '${o.name}': ${o.nodes} nodes, ${o.podsPerNode} pods each (network namespaces, veths, cgroups)…\n`,
        );
        const state = await clusterUp(
          {
            name: o.name,
            nodes: o.nodes,
            podsPerNode: o.podsPerNode,
            nodeCidr: o.nodeCidr,
            podCidr: o.podCidr,
            serviceCidr: o.serviceCidr,
            cgroupLayout: o.cgroupLayout,
          },
          { storeDir: o.store },
        );
        process.stdout.write(
          `cluster '${state.spec.name}' is up: ${state.nodes.length} nodes, ${state.pods.length} pods\nfile store: ${state.storeDir}\ntry: weft cluster status${o.name === "weft" ? "" : ` --name ${o.name}`}\n`,
        );
      }),
    );

  cluster
    .command("down")
    .description("remove everything the cluster made, including leftovers of a crashed run")
    .option(...nameOpt)
    .option("--all", "remove every weft cluster's netns, cgroups, pins and processes")
    .action(
      action(async (o) => {
        const r = await clusterDown(o.name, Boolean(o.all));
        process.stdout.write(
          `removed ${r.netns.length} netns, ${r.cgroups.length} cgroup trees, ${r.pins.length} pins, stopped ${r.processes} processes\n`,
        );
        if (r.problems.length) throw new CliError(`cleanup incomplete:\n  ${r.problems.join("\n  ")}`);
      }),
    );

  cluster
    .command("status")
    .description("nodes, pods, services and processes of the cluster")
    .option(...nameOpt)
    .option("-o, --output <format>", "table, json or yaml", "table")
    .action(
      action((o) => {
        const format = parseFormat(o.output);
        const state = requireState(o.name);
        const pods = state.pods.map((p) => ({ ...p, present: netnsExists(p.netns) }));
        const procs = state.processes.map((p) => ({ ...p, alive: isSameProcess(p.pid, p.startTime) }));
        emit(format, { ...state, pods, processes: procs }, () =>
          [
            `cluster ${state.spec.name} (${state.phase}), store ${state.storeDir}`,
            "",
            table(
              ["NAMESPACE", "POD", "NODE", "IP", "SERVICEACCOUNT", "NETNS"],
              pods.map((p) => [p.namespace, p.name, `node${p.node}`, p.ip, p.serviceAccount, p.present ? "ok" : "MISSING"]),
            ),
            "",
            state.services.length
              ? table(
                  ["NAMESPACE", "SERVICE", "VIP", "PORTS", "SELECTOR"],
                  state.services.map((s) => [
                    s.namespace,
                    s.name,
                    s.vip,
                    s.ports.map((p) => `${p.port}->${p.targetPort}`).join(","),
                    Object.entries(s.selector)
                      .map(([k, v]) => `${k}=${v}`)
                      .join(","),
                  ]),
                )
              : "no services",
            "",
            procs.length
              ? table(
                  ["PID", "PROCESS", "NETNS", "STATE"],
                  procs.map((p) => [String(p.pid), p.what, p.netns, p.alive ? "running" : "exited"]),
                )
              : "no processes",
          ].join("\n"),
        );
      }),
    );

  cluster
    .command("exec")
    .description("run a command in a pod (its netns and cgroup), a node or the fabric")
    .argument("<target>", "pod as [namespace/]name, node<N>, or fabric")
    .argument("<command...>", "command and arguments (put them after --)")
    .option(...nameOpt)
    .option("-d, --detach", "run in the background and record the process for `down`")
    .action(
      action(async (target: string, command: string[], o) => {
        const state = requireState(o.name);
        const place = resolvePlace(state, target);
        if (o.detach) {
          const rec = await runDetached(o.name, target, command);
          process.stdout.write(`${rec.pid}\n`);
          return;
        }
        const [cmd, ...args] = execArgv(state, place, command);
        const child = spawn(cmd as string, args, { stdio: "inherit" });
        const forward = (sig: NodeJS.Signals) => child.kill(sig);
        process.on("SIGINT", forward);
        process.on("SIGTERM", forward);
        const code = await new Promise<number>((resolve, reject) => {
          child.on("error", reject);
          child.on("exit", (c, sig) => resolve(c ?? (sig ? 128 : 1)));
        });
        process.off("SIGINT", forward);
        process.off("SIGTERM", forward);
        process.exitCode = code;
      }),
    );

  cluster
    .command("add-pod")
    .description("add a pod (netns + cgroup + veth) and publish it to the file store")
    .argument("<name>", "pod name")
    .option(...nameOpt)
    .option("-n, --namespace <ns>", "namespace", "default")
    .requiredOption("--node <n>", "node number", intOption("--node", 1, MAX_NODES))
    .option("-l, --labels <k=v,...>", "pod labels")
    .option("--service-account <sa>", "service account", "default")
    .action(
      action(async (podName: string, o) => {
        const pod = await addPod(o.name, {
          namespace: o.namespace,
          name: podName,
          node: o.node,
          labels: parseLabels(o.labels),
          serviceAccount: o.serviceAccount,
        });
        process.stdout.write(`pod ${pod.namespace}/${pod.name} on node${pod.node} at ${pod.ip}\n`);
      }),
    );

  cluster
    .command("remove-pod")
    .description("remove a pod: its processes, netns and cgroup")
    .argument("<name>", "pod name")
    .option(...nameOpt)
    .option("-n, --namespace <ns>", "namespace", "default")
    .action(
      action(async (podName: string, o) => {
        await removePod(o.name, o.namespace, podName);
        process.stdout.write(`pod ${o.namespace}/${podName} removed\n`);
      }),
    );

  cluster
    .command("add-service")
    .description("add or replace a ClusterIP service (VIP allocated, EndpointSlice kept in step)")
    .argument("<name>", "service name")
    .option(...nameOpt)
    .option("-n, --namespace <ns>", "namespace", "default")
    .requiredOption("-p, --port <ports...>", "service port[:targetPort][/name], e.g. 80:8080/http (repeatable)")
    .requiredOption("-s, --selector <k=v,...>", "pod selector")
    .action(
      action(async (svcName: string, o) => {
        const ports = (o.port as string[]).map(parsePort);
        const selector = parseLabels(o.selector, "selector");
        if (Object.keys(selector).length === 0) throw new CliError("--selector must name at least one label");
        const svc = await addService(o.name, { namespace: o.namespace, name: svcName, ports, selector });
        process.stdout.write(`service ${svc.namespace}/${svc.name} at ${svc.vip}\n`);
      }),
    );

  cluster
    .command("remove-service")
    .argument("<name>", "service name")
    .option(...nameOpt)
    .option("-n, --namespace <ns>", "namespace", "default")
    .action(
      action(async (svcName: string, o) => {
        await removeService(o.name, o.namespace, svcName);
        process.stdout.write(`service ${o.namespace}/${svcName} removed\n`);
      }),
    );

  cluster
    .command("label")
    .description("set (k=v) or remove (k-) labels on a namespace or pod, as kubectl label does")
    .argument("<kind>", "namespace or pod")
    .argument("<name>", "object name")
    .argument("<edits...>", "k=v to set, k- to remove")
    .option(...nameOpt)
    .option("-n, --namespace <ns>", "namespace of a pod", "default")
    .action(
      action(async (kind: string, target: string, edits: string[], o) => {
        const k = kind
          .toLowerCase()
          .replace(/^(ns|namespaces)$/, "namespace")
          .replace(/^pods?$/, "pod");
        if (k !== "namespace" && k !== "pod") throw new CliError(`kind '${kind}': expected namespace or pod`);
        const labels = await label(o.name, k, target, edits, o.namespace);
        process.stdout.write(
          `${k} ${target} labels: ${
            Object.entries(labels)
              .map(([a, b]) => `${a}=${b}`)
              .join(",") || "(none)"
          }\n`,
        );
      }),
    );

  cluster
    .command("apply")
    .description("put policy YAML (Istio, Gateway API…) into the file store, as kubectl apply")
    .requiredOption("-f, --file <file>", "YAML file (multi-document), or - for stdin")
    .option("-n, --namespace <ns>", "namespace for objects that name none; objects naming another are refused")
    .option(...nameOpt)
    .action(
      action((o) => {
        const state = requireState(o.name);
        const text = readFileSync(o.file === "-" ? 0 : o.file, "utf8");
        const written = applyUserObjects(
          state.storeDir,
          parseAllDocuments(text),
          o.file,
          o.namespace === undefined ? {} : { namespace: o.namespace },
        );
        for (const w of written) process.stdout.write(`${w} configured\n`);
      }),
    );

  cluster
    .command("delete")
    .description("remove objects named in a YAML file from the file store")
    .requiredOption("-f, --file <file>", "YAML file, or - for stdin")
    .option("-n, --namespace <ns>", "namespace for objects that name none; objects naming another are refused")
    .option(...nameOpt)
    .action(
      action((o) => {
        const state = requireState(o.name);
        const text = readFileSync(o.file === "-" ? 0 : o.file, "utf8");
        for (const d of deleteUserObjects(
          state.storeDir,
          parseAllDocuments(text),
          o.file,
          o.namespace === undefined ? {} : { namespace: o.namespace },
        ))
          process.stdout.write(`${d} deleted\n`);
      }),
    );
}

/** "80:8080/http" → ServicePort. */
export function parsePort(text: string): ServicePort {
  const m = /^(\d{1,5})(?::(\d{1,5}))?(?:\/([a-z0-9-]+))?$/.exec(text);
  if (!m) throw new CliError(`port '${text}': expected port[:targetPort][/name], e.g. 80:8080/http`);
  const port = Number(m[1]);
  const targetPort = m[2] ? Number(m[2]) : port;
  for (const p of [port, targetPort]) if (p < 1 || p > 65535) throw new CliError(`port '${text}': ${p} is not a port number`);
  const out: ServicePort = { port, targetPort, protocol: "TCP" };
  const name = m[3];
  if (name) {
    out.name = name;
    // Kubernetes' convention: a port named http/http2/grpc (optionally -suffix) speaks that protocol.
    const proto = /^(http2|http|grpc)(-|$)/.exec(name)?.[1];
    if (proto) out.appProtocol = proto;
  }
  return out;
}
