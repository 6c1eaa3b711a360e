// Run inside a node's netns by the control-plane integration test: asks the controller's CA for a
// certificate with a node's credential and prints the outcome as one JSON line.
// usage: node control-probe.mjs csr <controller host:port> <ca file> <token file|-> <identity>
import { generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dirname, "..", "..", "dist");
const { createCsr } = await import(join(root, "common/pki/csr.js"));
const { GrpcIssuer } = await import(join(root, "agent/identity/issuer.js"));

const [cmd, target, caFile, tokenFile, identity] = process.argv.slice(2);
if (cmd !== "csr") {
  process.stdout.write(`${JSON.stringify({ ok: false, error: `unknown command ${cmd}` })}\n`);
  process.exit(2);
}
const issuer = new GrpcIssuer({
  target,
  tokenFile: tokenFile === "-" ? "/dev/null" : tokenFile,
  roots: () => [readFileSync(caFile, "utf8")],
});
try {
  const keys = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const res = await issuer.issue(identity, createCsr(identity, keys), 0);
  process.stdout.write(`${JSON.stringify({ ok: true, chain: res.chain, roots: res.roots })}\n`);
} catch (e) {
  process.stdout.write(`${JSON.stringify({ ok: false, error: e.message })}\n`);
} finally {
  issuer.close();
}
