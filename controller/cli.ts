/**
 * `weft controller`: runs the controller; its subcommands mint node tokens, rotate the root CA and
 * show a running controller's status. Their --state-dir/--admin-socket may come before or after the
 * subcommand's name (`weft controller status --state-dir DIR`, as the docs write it).
 */
import { X509Certificate } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { action, CliError, emit, parseFormat, table } from "../common/cli-output.js";
import { untilSignal } from "../native/proc.js";
import type { RotationPhase } from "./ca/root-store.js";
import { DEFAULT_STATE_DIR } from "./config.js";
import { actAsStateDirOwner } from "./state-owner.js";

// The controller's code (gRPC, protobuf, X.509) is loaded only by the commands that use it, so
// every other `weft` command starts fast.

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

async function rootsIn(stateDir: string): Promise<{ file: string; subject: string; sha256: string; notAfter: string; role: string }[]> {
  const { CA_FILES, caDir } = await import("./ca/root-store.js");
  const { fingerprint256, splitPemCertificates } = await import("../common/pki/x509.js");
  const dir = caDir(stateDir);
  const out: { file: string; subject: string; sha256: string; notAfter: string; role: string }[] = [];
  const add = (file: string, role: string) => {
    for (const pem of splitPemCertificates(readFileSync(file, "utf8"))) {
      const c = new X509Certificate(pem);
      out.push({
        file,
        subject: c.subject.replace(/\n/g, ", "),
        sha256: fingerprint256(c).slice(0, 16),
        notAfter: new Date(c.validTo).toISOString(),
        role,
      });
    }
  };
  if (existsSync(join(dir, CA_FILES.rootCert))) add(join(dir, CA_FILES.rootCert), "signing");
  if (existsSync(join(dir, CA_FILES.nextCert))) add(join(dir, CA_FILES.nextCert), "next (trusted, not signing yet)");
  const t = join(dir, CA_FILES.trustedDir);
  if (existsSync(t)) for (const f of readdirSync(t).filter((n) => n.endsWith(".pem"))) add(join(t, f), "old (trusted until 'finish')");
  return out;
}

/**
 * A subcommand's options over its parent's: commander's optsWithGlobals lets the parent's defaults
 * win, and `weft controller status --state-dir DIR` must mean DIR.
 */
function subcommandOptions(cmd: Command): Record<string, unknown> {
  const own = Object.fromEntries(Object.entries(cmd.opts()).filter(([, v]) => v !== undefined));
  return { ...cmd.optsWithGlobals(), ...own };
}

/** Registers `weft controller` and its subcommands. */
export function registerControllerCommands(program: Command): void {
  const controller = program
    .command("controller")
    .description("run the control plane: sources, per-node xDS push, CA with node authorization")
    .option("--store <path>", "file store to read (a directory of Kubernetes YAML, or one file)")
    .option("--kubernetes", "read the Kubernetes API (in-cluster service account, else the default kubeconfig)")
    .option("--kubeconfig <file>", "read the Kubernetes API with this kubeconfig")
    .option("--context <name>", "kubeconfig context")
    .option("--namespace-selector <selector>", "Kubernetes mode: only namespaces matching this label selector are in the mesh")
    .option("--listen <ip:port>", "gRPC address (xDS + CA)", "0.0.0.0:15012")
    .option("--state-dir <dir>", "root CA, node tokens and status socket", DEFAULT_STATE_DIR)
    .option("--trust-domain <domain>", "SPIFFE trust domain", "cluster.local")
    .option("--root-namespace <ns>", "namespace whose policies apply mesh-wide (istio-system for Istio users)", "weft-system")
    .option("--cluster-domain <domain>", "Kubernetes cluster domain", "cluster.local")
    .option("--debounce <duration>", "quiet time before a change is pushed", "100ms")
    .option("--max-debounce <duration>", "longest a change waits under continuous churn", "1s")
    .option("--ca-dir <dir>", "plug-in CA: ca-cert.pem, ca-key.pem, root-cert.pem[, cert-chain.pem] (Istio's cacerts layout)")
    .option("--ca-secret <ns/name>", "Kubernetes mode: CA from (or created in) this Secret, cacerts layout")
    .option("--cert-ttl <duration>", "workload certificate lifetime", "24h")
    .option("--max-cert-ttl <duration>", "longest lifetime an agent may ask for")
    .option("--server-name <name>", "extra DNS name or IP in the serving certificate (repeatable)", collect)
    .option("--agent-service-account <ns/name>", "Kubernetes mode: service account agents run as (repeatable)", collect)
    .option("--token-audience <aud>", "Kubernetes mode: audience of the agents' projected tokens (repeatable)", collect)
    .option("--admin-socket <path>", "status socket (default <state-dir>/controller.sock)")
    .option("--log-level <level>", "trace, debug, info, warn or error", "info")
    .option("--limit <name=value>", "override a server limit, e.g. maxStreamsPerNode=4 (repeatable; docs/LIMITS.md)", collect)
    .action(
      action(async (o) => {
        const { controllerConfig } = await import("./config.js");
        const { Controller } = await import("./controller.js");
        const c = new Controller(controllerConfig(o));
        await c.start();
        const sig = await untilSignal();
        c.log.info({ signal: sig }, "controller stopping");
        await c.stop();
      }),
    );

  controller
    .command("token")
    .description("mint a node's bootstrap token (or show the existing one's path); uses the controller's --state-dir")
    .requiredOption("--node <name>", "node name")
    .option("--state-dir <dir>", `the controller's state directory (default ${DEFAULT_STATE_DIR})`)
    .action(
      action(async (_o, cmd: Command) => {
        const o = subcommandOptions(cmd) as Record<string, string>;
        const { BootstrapTokens } = await import("./ca/node-auth.js");
        actAsStateDirOwner(o.stateDir);
        const tokens = new BootstrapTokens(join(o.stateDir, "tokens"));
        process.stdout.write(`${tokens.ensure(o.node)}\n`);
      }),
    );

  const ca = controller.command("ca").description("the controller's root CA in --state-dir");
  ca.command("status")
    .description("roots: the signing one, a prepared next one, old ones still trusted")
    .option("--state-dir <dir>", `the controller's state directory (default ${DEFAULT_STATE_DIR})`)
    .option("-o, --output <format>", "table, json or yaml", "table")
    .action(
      action(async (_o, cmd: Command) => {
        const o = subcommandOptions(cmd) as Record<string, string>;
        const roots = await rootsIn(o.stateDir);
        if (roots.length === 0) throw new CliError(`${join(o.stateDir, "ca")} has no CA yet; the controller creates it on first start`);
        emit(parseFormat(o.output), roots, () =>
          table(
            ["ROLE", "SHA256", "NOT-AFTER", "SUBJECT"],
            roots.map((r) => [r.role, r.sha256, r.notAfter, r.subject]),
          ),
        );
      }),
    );
  ca.command("rotate")
    .description("one step of a root rotation: prepare (trust a new root), activate (sign with it), finish (drop old roots)")
    .requiredOption("--phase <phase>", "prepare, activate or finish")
    .option("--state-dir <dir>", `the controller's state directory (default ${DEFAULT_STATE_DIR})`)
    .option("--trust-domain <domain>", "SPIFFE trust domain of a new root (default cluster.local)")
    .action(
      action(async (_o, cmd: Command) => {
        const o = subcommandOptions(cmd) as Record<string, string>;
        if (!["prepare", "activate", "finish"].includes(o.phase))
          throw new CliError(`--phase '${o.phase}': use prepare, activate or finish`);
        const { rotateRoot } = await import("./ca/root-store.js");
        actAsStateDirOwner(o.stateDir);
        process.stdout.write(`${rotateRoot(o.stateDir, o.phase as RotationPhase, o.trustDomain)}\n`);
      }),
    );

  controller
    .command("status")
    .description("a running controller's sources, agents (ACKed versions, NACKs) and CA")
    .option("--state-dir <dir>", `the controller's state directory (default ${DEFAULT_STATE_DIR})`)
    .option("--admin-socket <path>", "status socket (default <state-dir>/controller.sock)")
    .action(
      action(async (_o, cmd: Command) => {
        const o = subcommandOptions(cmd) as Record<string, string>;
        const socket = o.adminSocket ?? join(o.stateDir, "controller.sock");
        const { adminGet } = await import("../common/admin-server.js");
        const r = await adminGet(socket, "/status", 5000, "controller").catch((e: Error) => {
          throw new CliError(e.message);
        });
        process.stdout.write(r.body);
      }),
    );
}

/** Registers `weft analyze` (its code loads only when it runs). */
export function registerAnalyzeCommand(program: Command): void {
  program
    .command("analyze")
    .description("check mesh configuration (Istio/Kubernetes YAML, or the live cluster) for mistakes; codes: docs/analyze/")
    .option("-f, --file <path>", "YAML file or directory to check, '-' for stdin (repeatable)", collect)
    .option("--cluster", "ask the running controller to analyze the objects it holds and the agents it sees")
    .option("-n, --namespace <ns>", "namespace of objects that name none (as kubectl apply -n)", "default")
    .option("-o, --output <format>", "table, json or yaml", "table")
    .option("--state-dir <dir>", "controller state directory (its status socket), for --cluster", DEFAULT_STATE_DIR)
    .option("--admin-socket <path>", "controller status socket, for --cluster")
    .option("--trust-domain <domain>", "SPIFFE trust domain of the mesh", "cluster.local")
    .option("--root-namespace <ns>", "namespace whose policies apply mesh-wide", "weft-system")
    .option("--list-codes", "list every message code and what it means")
    .action(
      action(async (o: import("./analyze/command.js").AnalyzeFlags) => {
        const { runAnalyze } = await import("./analyze/command.js");
        process.exitCode = await runAnalyze(o);
      }),
    );
}
