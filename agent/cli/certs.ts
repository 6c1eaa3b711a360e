/**
 * `weft certs`: the workload identities this node holds certificates for (serial, validity, time to
 * renewal, errors) and the trust bundle's roots (istioctl ztunnel-config certificates).
 */
import type { Command } from "commander";
import { action, emit, parseFormat, table } from "../../common/cli-output.js";
import type { CertificateStatus } from "../identity/manager.js";
import { agentOptions, connectAgent } from "./agent-client.js";
import { relative } from "./humanize.js";

/** A root of the trust bundle as GET /certs describes it. */
export interface RootInfo {
  subject: string;
  sha256: string;
  notBefore: string;
  notAfter: string;
  signing: boolean;
}

/** GET /certs. */
export interface CertsResponse {
  certificates: CertificateStatus[];
  trustBundle: RootInfo[];
}

/** The human rendering (exported for tests). */
export function renderCerts(r: CertsResponse, now = Date.now()): string {
  const certs = r.certificates.length
    ? table(
        ["IDENTITY", "STATE", "SERIAL", "NOT-AFTER", "EXPIRES", "RENEWAL"],
        r.certificates.map((c) => [
          c.identity,
          c.lastError ? `${c.state} (${c.lastError})` : c.state,
          c.serial ?? "-",
          c.notAfter ?? "-",
          relative(c.notAfter, now),
          c.renewAt ? relative(c.renewAt, now) : "-",
        ]),
      )
    : "no workload certificates (no pod of this node is in the mesh)";
  const roots = r.trustBundle.length
    ? table(
        ["TRUST BUNDLE ROOT", "SHA256", "NOT-AFTER", "EXPIRES", "ROLE"],
        r.trustBundle.map((t) => [
          t.subject.replace(/\n/g, ", "),
          `${t.sha256.slice(0, 16)}…`,
          t.notAfter,
          relative(t.notAfter, now),
          t.signing ? "signing" : "trusted",
        ]),
      )
    : "no trust bundle yet (the controller has not sent one)";
  return `${certs}\n\n${roots}`;
}

/** Registers `weft certs`. */
export function registerCertsCommand(program: Command): void {
  agentOptions(
    program.command("certs").description("workload certificates held (serial, expiry, time to renewal) and the trust bundle's roots"),
  )
    .option("-o, --output <format>", "table, json or yaml", "table")
    .action(
      action(async (o) => {
        const format = parseFormat(o.output);
        const agent = await connectAgent(o);
        const r = await agent.json<CertsResponse>("/certs");
        emit(format, r, () => renderCerts(r));
      }),
    );
}
