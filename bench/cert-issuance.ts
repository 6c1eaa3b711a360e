/**
 * Certificate issuance rate. Side by side, interleaved round by round:
 *   - weft's CA: CSR checked and certificate built with forge.asn1, signed by Node's crypto with
 *     the ECDSA P-256 root (what the controller does);
 *   - the same with an RSA-2048 CA key (what a plug-in RSA CA costs);
 *   - the baseline: node-forge alone (forge.pki certificate, forge's pure-JS RSA-2048 signing);
 *   - end to end over gRPC on loopback: the agent's side (P-256 key, CSR) plus the controller's
 *     Certificates call with authentication and node authorization, 8 requests in flight.
 *
 *   node dist/bench/cert-issuance.js [--quick] [--rounds 3]
 */
import { generateKeyPairSync, type KeyObject, X509Certificate } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import forge from "node-forge";
import { GrpcIssuer } from "../agent/identity/issuer.js";
import { errorMessage } from "../common/errors.js";
import { silentLogger } from "../common/log.js";
import { createCsr } from "../common/pki/csr.js";
import { issueCertificate } from "../common/pki/x509.js";
import { type CaMaterial, CertificateAuthority, readPrivateKey } from "../controller/ca/ca.js";
import { generateRoot } from "../controller/ca/root-store.js";
import { controllerConfig } from "../controller/config.js";
import { Controller } from "../controller/controller.js";
import { emitBenchOutput } from "./lib/output.js";
import { median, pairedRatioSpread, sig } from "./lib/stats.js";
import { checkTarget } from "./lib/targets.js";

const ID = "spiffe://cluster.local/ns/bench/sa/client";
const log = (m: string) => process.stderr.write(`cert-issuance: ${m}\n`);

function args(): { quick: boolean; rounds: number } {
  const { values } = parseArgs({
    options: { quick: { type: "boolean" }, rounds: { type: "string" }, help: { type: "boolean" } },
    strict: true,
  });
  if (values.help) {
    process.stderr.write("usage: cert-issuance.js [--quick] [--rounds N]\n");
    process.exit(0);
  }
  const quick = values.quick === true;
  const rounds = values.rounds === undefined ? (quick ? 1 : 3) : Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) throw new Error(`--rounds '${values.rounds}': expected 1 to 20`);
  return { quick, rounds };
}

function material(certPem: string, keyPem: string): CaMaterial {
  return {
    origin: "bench",
    signingKey: readPrivateKey(keyPem, "bench"),
    signingCertPem: certPem,
    intermediatesPem: [],
    rootPem: certPem,
    extraRootsPem: [],
  };
}

/** A self-signed RSA-2048 root (Node's keygen; forge's is far too slow to be fair). */
function rsaRoot(): { certPem: string; key: KeyObject; keyPem: string } {
  const keys = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const { pem } = issueCertificate(
    {
      spki: keys.publicKey.export({ type: "spki", format: "der" }) as Buffer,
      subject: { O: "bench", CN: "rsa root" },
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 86400e3 * 365),
      isCa: true,
    },
    { key: keys.privateKey },
  );
  return { certPem: pem, key: keys.privateKey, keyPem: keys.privateKey.export({ type: "pkcs8", format: "pem" }) as string };
}

/** Certificates per second of fn, run n times (or until maxMs passes). */
async function rate(
  n: number,
  maxMs: number,
  fn: () => void | Promise<void>,
): Promise<{ perSecond: number; usPerCert: number; done: number }> {
  const start = performance.now();
  let done = 0;
  while (done < n && performance.now() - start < maxMs) {
    await fn();
    done++;
  }
  const ms = performance.now() - start;
  return { perSecond: (done / ms) * 1000, usPerCert: (ms * 1000) / done, done };
}

async function main(): Promise<void> {
  const a = args();
  const sizes = a.quick ? { fast: 300, forge: 5, grpc: 200 } : { fast: 3000, forge: 30, grpc: 1500 };
  // CSRs are made up front: the CA's side is what is measured (the agent's side is in the gRPC row).
  const ecLeaf = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const csrPem = createCsr(ID, ecLeaf);
  const ecRoot = generateRoot("cluster.local");
  const ecCa = new CertificateAuthority(material(ecRoot.certPem, ecRoot.keyPem), {
    trustDomain: "cluster.local",
    defaultTtlMs: 86400e3,
    maxTtlMs: 86400e3,
  });
  const rsa = rsaRoot();
  const rsaCa = new CertificateAuthority(material(rsa.certPem, rsa.keyPem), {
    trustDomain: "cluster.local",
    defaultTtlMs: 86400e3,
    maxTtlMs: 86400e3,
  });
  // node-forge alone: forge's pki models RSA keys only, so its subject key is RSA too.
  const forgeCaKey = forge.pki.privateKeyFromPem(rsa.keyPem);
  const forgeCaCert = forge.pki.certificateFromPem(rsa.certPem);
  const forgeLeafKey = forge.pki.publicKeyFromPem(
    generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({ type: "spki", format: "pem" }) as string,
  );
  const forgeSign = () => {
    const c = forge.pki.createCertificate();
    c.publicKey = forgeLeafKey;
    c.serialNumber = forge.util.bytesToHex(forge.random.getBytesSync(16)).replace(/^[89a-f]/, "1");
    c.validity.notBefore = new Date(Date.now() - 60_000);
    c.validity.notAfter = new Date(Date.now() + 86400e3);
    c.setSubject([]);
    c.setIssuer(forgeCaCert.subject.attributes);
    c.setExtensions([
      { name: "basicConstraints", cA: false, critical: true },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
      { name: "extKeyUsage", serverAuth: true, clientAuth: true },
      { name: "subjectAltName", critical: true, altNames: [{ type: 6, value: ID }] },
    ]);
    c.sign(forgeCaKey, forge.md.sha256.create());
    return forge.pki.certificateToPem(c);
  };
  // Every path's output is a certificate OpenSSL-backed Node verifies against its root.
  if (!new X509Certificate(ecCa.signWorkload(csrPem, ID).chain[0] as string).verify(new X509Certificate(ecRoot.certPem).publicKey))
    throw new Error("weft EC certificate does not verify");
  if (!new X509Certificate(forgeSign()).verify(new X509Certificate(rsa.certPem).publicKey))
    throw new Error("forge certificate does not verify");

  // End to end: an in-process controller on loopback with one node and one pod.
  const dir = mkdtempSync(join(tmpdir(), "weft-certbench-"));
  const store = join(dir, "store");
  mkdirSync(store);
  writeFileSync(
    join(store, "ns.json"),
    JSON.stringify({ apiVersion: "v1", kind: "Namespace", metadata: { name: "bench", labels: { "weft.dev/mesh": "enabled" } } }),
  );
  writeFileSync(join(store, "node.json"), JSON.stringify({ apiVersion: "v1", kind: "Node", metadata: { name: "n1" } }));
  writeFileSync(
    join(store, "pod.json"),
    JSON.stringify({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "c", namespace: "bench", uid: "u1" },
      spec: { nodeName: "n1", serviceAccountName: "client" },
      status: { podIP: "10.244.1.2" },
    }),
  );
  const controller = new Controller(
    controllerConfig({ store, listen: "127.0.0.1:0", stateDir: join(dir, "state"), adminSocket: join(dir, "c.sock") }),
    silentLogger(),
  );
  await controller.start();
  const issuer = new GrpcIssuer({
    target: `127.0.0.1:${controller.port}`,
    tokenFile: join(dir, "state", "tokens", "n1.token"),
    roots: () => [readFileSync(join(dir, "state", "ca", "root-cert.pem"), "utf8")],
  });
  const grpcRun = async (n: number) => {
    const start = performance.now();
    let next = 0;
    const worker = async () => {
      while (next < n) {
        next++;
        const keys = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
        await issuer.issue(ID, createCsr(ID, keys), 0);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    const ms = performance.now() - start;
    return { perSecond: (n / ms) * 1000, usPerCert: (ms * 1000) / n, done: n };
  };

  type V = "weft-ec" | "weft-rsa" | "forge" | "grpc";
  const results: Record<V, number[]> = { "weft-ec": [], "weft-rsa": [], forge: [], grpc: [] };
  const variants: [V, () => Promise<{ perSecond: number; done: number }>][] = [
    ["weft-ec", () => rate(sizes.fast, 20_000, () => void ecCa.signWorkload(csrPem, ID))],
    ["weft-rsa", () => rate(sizes.fast / 3, 20_000, () => void rsaCa.signWorkload(csrPem, ID))],
    ["forge", () => rate(sizes.forge, 30_000, () => void forgeSign())],
    ["grpc", () => grpcRun(sizes.grpc)],
  ];
  try {
    for (let r = 0; r < a.rounds; r++) {
      const order = variants.map((_, i) => variants[(i + r) % variants.length] as (typeof variants)[number]);
      for (const [name, run] of order) {
        const res = await run();
        results[name].push(res.perSecond);
        log(`round ${r + 1}: ${name} ${res.perSecond.toFixed(1)} certs/s (${res.done} certs)`);
      }
    }
  } finally {
    issuer.close();
    await controller.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const m = (v: V) => median(results[v]);
  // Paired: the ratio within each round, then its median and spread across rounds.
  const vsForge = (v: V) => pairedRatioSpread(results[v], results.forge);
  const row = (v: V, what: string) => {
    const r = vsForge(v);
    return {
      variant: v,
      what,
      "certs/s": Math.round(m(v) * 10) / 10,
      "µs/cert": Math.round(1e6 / m(v)),
      "vs forge-only": r ? sig(r.median, 3) : null,
      ...(r && r.n > 1 ? { "vs forge-only spread": [sig(r.min, 3), sig(r.max, 3)] } : {}),
    };
  };
  const times = (v: V) => Math.round(vsForge(v)?.median ?? Number.NaN);
  emitBenchOutput({
    bench: "cert-issuance",
    title: "CA: certificate issuance rate",
    command: `node dist/bench/cert-issuance.js${a.quick ? " --quick" : ""} --rounds ${a.rounds}`,
    rows: [
      row("weft-ec", "weft CA, ECDSA P-256 root (forge.asn1 + Node crypto), CSR checked"),
      row("weft-rsa", "weft CA, RSA-2048 root (forge.asn1 + Node crypto), CSR checked"),
      row("forge", "baseline: node-forge only (forge.pki, pure-JS RSA-2048 signing)"),
      row("grpc", "end to end: agent key + CSR, gRPC+TLS, auth, node authz, signing (8 in flight)"),
    ],
    notes: [
      `Medians of ${a.rounds} interleaved round(s); the order of the variants rotates each round.`,
      `Signing with Node's crypto is ${times("weft-ec")}× the rate of node-forge's own signing (${times("weft-rsa")}× with an RSA key of the same size); ratios are per round, medians with their spread.`,
    ],
    targets: [
      checkTarget(
        {
          what: "weft CA vs node-forge-only signing (DESIGN.md: forge for structure, Node crypto for keys)",
          op: ">=",
          bound: 1,
          unit: "×",
        },
        vsForge("weft-ec"),
      ),
    ],
  });
}

main().then(
  () => process.exit(0),
  (e) => {
    log(`failed: ${errorMessage(e)}`);
    process.exit(1);
  },
);
