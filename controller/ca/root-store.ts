/**
 * Where the CA's keys come from: the controller's state dir (a self-signed root generated on
 * first start, key 0600), plug-in files in Istio's cacerts layout (ca-cert.pem, ca-key.pem,
 * root-cert.pem, cert-chain.pem), or a Kubernetes Secret in that layout. The state dir also
 * holds the root rotation: a "next" root trusted before it signs, and old roots trusted after.
 */
import { generateKeyPairSync, X509Certificate } from "node:crypto";
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import { errorMessage } from "../../common/errors.js";
import { fingerprint256, issueCertificate, splitPemCertificates } from "../../common/pki/x509.js";
import type { KubeClient } from "../sources/kube-client.js";
import { KubeApiError } from "../sources/kube-client.js";
import { type CaMaterial, readPrivateKey } from "./ca.js";

/** File names inside <state dir>/ca. */
export const CA_FILES = {
  rootCert: "root-cert.pem",
  rootKey: "root-key.pem",
  nextCert: "next-root-cert.pem",
  nextKey: "next-root-key.pem",
  trustedDir: "trusted",
} as const;

/** Default lifetime of a generated root. */
export const ROOT_TTL_MS = 10 * 365 * 24 * 3600 * 1000;

/** The CA directory of a controller state dir. */
export function caDir(stateDir: string): string {
  return join(stateDir, "ca");
}

/** Writes a file atomically with the given mode (keys 0600). */
export function writeFileSecure(path: string, content: string, mode: number): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = join(dirname(path), `.${process.pid}.${Date.now()}.tmp`);
  const fd = openSync(tmp, "w", mode);
  try {
    writeSync(fd, content);
  } finally {
    closeSync(fd);
  }
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

/** A new self-signed ECDSA P-256 root for a trust domain. */
export function generateRoot(trustDomain: string, now = new Date()): { certPem: string; keyPem: string } {
  const keys = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const { pem } = issueCertificate(
    {
      spki: keys.publicKey.export({ type: "spki", format: "der" }) as Buffer,
      subject: { O: "weft", CN: `weft root CA ${now.toISOString().slice(0, 19)}Z` },
      altNames: { uris: [`spiffe://${trustDomain}`] },
      notBefore: new Date(now.getTime() - 60_000),
      notAfter: new Date(now.getTime() + ROOT_TTL_MS),
      isCa: true,
    },
    { key: keys.privateKey },
  );
  return { certPem: pem, keyPem: keys.privateKey.export({ type: "pkcs8", format: "pem" }) as string };
}

function readCerts(path: string): string[] {
  const certs = splitPemCertificates(readFileSync(path, "utf8"));
  if (certs.length === 0) throw new Error(`${path}: no PEM certificate found`);
  for (const c of certs) {
    try {
      new X509Certificate(c);
    } catch (e) {
      throw new Error(`${path}: unreadable certificate: ${errorMessage(e)}`);
    }
  }
  return certs;
}

function trustedRoots(dir: string): string[] {
  const t = join(dir, CA_FILES.trustedDir);
  if (!existsSync(t)) return [];
  return readdirSync(t)
    .filter((f) => f.endsWith(".pem") && !f.startsWith("."))
    .sort()
    .flatMap((f) => readCerts(join(t, f)));
}

/** Loads the state dir's CA, generating and persisting a root on first start. */
export function loadStateDirCa(stateDir: string, trustDomain: string): { material: CaMaterial; created: boolean } {
  const dir = caDir(stateDir);
  const certPath = join(dir, CA_FILES.rootCert);
  const keyPath = join(dir, CA_FILES.rootKey);
  let created = false;
  if (!existsSync(certPath) || !existsSync(keyPath)) {
    if (existsSync(certPath) !== existsSync(keyPath)) {
      throw new Error(
        `${dir}: only one of ${CA_FILES.rootCert} and ${CA_FILES.rootKey} exists; restore the other or remove both to generate a new root`,
      );
    }
    const root = generateRoot(trustDomain);
    writeFileSecure(keyPath, root.keyPem, 0o600);
    writeFileSecure(certPath, root.certPem, 0o644);
    created = true;
  }
  completeInterruptedActivation(dir);
  const rootPem = readCerts(certPath)[0] as string;
  const extra = [...trustedRoots(dir)];
  if (existsSync(join(dir, CA_FILES.nextCert))) extra.push(...readCerts(join(dir, CA_FILES.nextCert)));
  return {
    created,
    material: {
      origin: `state dir ${dir}`,
      signingKey: readPrivateKey(readFileSync(keyPath, "utf8"), keyPath),
      signingCertPem: rootPem,
      intermediatesPem: [],
      rootPem,
      extraRootsPem: extra,
    },
  };
}

/** A crash inside `activate` can leave the new key beside the old certificate: finish the swap. */
function completeInterruptedActivation(dir: string): void {
  const next = join(dir, CA_FILES.nextCert);
  const keyPath = join(dir, CA_FILES.rootKey);
  if (!existsSync(next) || existsSync(join(dir, CA_FILES.nextKey))) return;
  const key = readPrivateKey(readFileSync(keyPath, "utf8"), keyPath);
  if (new X509Certificate(readFileSync(next, "utf8")).checkPrivateKey(key)) renameSync(next, join(dir, CA_FILES.rootCert));
}

/** Builds material from Istio's cacerts layout (files or Secret keys). */
function pluginMaterial(files: Record<string, string | undefined>, origin: string): CaMaterial {
  const missing = ["ca-cert.pem", "ca-key.pem", "root-cert.pem"].filter((k) => !files[k]);
  if (missing.length)
    throw new Error(
      `${origin}: ${missing.join(", ")} ${missing.length > 1 ? "are" : "is"} missing (expected ca-cert.pem, ca-key.pem, root-cert.pem and optionally cert-chain.pem)`,
    );
  const need = (k: string) => files[k] as string;
  const signingCertPem = splitPemCertificates(need("ca-cert.pem"))[0];
  const roots = splitPemCertificates(need("root-cert.pem"));
  if (!signingCertPem || roots.length === 0) throw new Error(`${origin}: ca-cert.pem or root-cert.pem holds no certificate`);
  const rootPem = roots[0] as string;
  // cert-chain.pem runs from ca-cert up to (and maybe including) the root: keep what lies between.
  const chain = splitPemCertificates(files["cert-chain.pem"] ?? "").filter(
    (c) => c.trim() !== signingCertPem.trim() && !roots.some((r) => r.trim() === c.trim()),
  );
  return {
    origin,
    signingKey: readPrivateKey(need("ca-key.pem"), `${origin} ca-key.pem`),
    signingCertPem,
    intermediatesPem: chain,
    rootPem,
    extraRootsPem: roots.slice(1),
  };
}

/** Loads a plug-in CA from a directory with Istio's cacerts files. */
export function loadPluginCa(dir: string): CaMaterial {
  const read = (f: string) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), "utf8") : undefined);
  return pluginMaterial(
    Object.fromEntries(["ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem"].map((f) => [f, read(f)])),
    `CA files in ${dir}`,
  );
}

interface Secret {
  data?: Record<string, string>;
}

/**
 * Loads the CA from a Secret in the cacerts layout; when it does not exist and `create` is set,
 * generates a self-signed root and stores it there (so controller replicas share one root).
 */
export async function loadSecretCa(
  client: KubeClient,
  namespace: string,
  name: string,
  trustDomain: string,
  create: boolean,
): Promise<CaMaterial> {
  const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets/${encodeURIComponent(name)}`;
  const origin = `secret ${namespace}/${name}`;
  let secret: Secret;
  try {
    secret = await client.request<Secret>("GET", path);
  } catch (e) {
    if (!(e instanceof KubeApiError) || e.statusCode !== 404 || !create) throw new Error(`${origin}: ${errorMessage(e)}`);
    const root = generateRoot(trustDomain);
    const data = { "ca-cert.pem": root.certPem, "ca-key.pem": root.keyPem, "root-cert.pem": root.certPem };
    const body = { apiVersion: "v1", kind: "Secret", type: "Opaque", metadata: { name, namespace }, data: b64(data) };
    try {
      await client.request("POST", `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets`, body);
      secret = body;
    } catch (err) {
      // Another replica created it first: use theirs.
      if (err instanceof KubeApiError && err.statusCode === 409) secret = await client.request<Secret>("GET", path);
      else throw new Error(`${origin}: could not create it: ${errorMessage(err)}`);
    }
  }
  const files = Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64").toString("utf8")]));
  return pluginMaterial(files, origin);
}

function b64(data: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString("base64")]));
}

/** Phases of a root rotation (see docs/CONTROL-PLANE.md). */
export type RotationPhase = "prepare" | "activate" | "finish";

/**
 * One step of a root rotation in a state dir:
 * prepare — generate the next root; agents trust it (bundle = current + next) before it signs;
 * activate — the next root signs; the old one stays trusted; agents re-issue their certificates;
 * finish — drop the old roots once every certificate they signed has been replaced.
 */
export function rotateRoot(stateDir: string, phase: RotationPhase, trustDomain: string): string {
  const dir = caDir(stateDir);
  const cur = join(dir, CA_FILES.rootCert);
  if (!existsSync(cur)) throw new Error(`${dir} has no root yet; start the controller once (it creates one)`);
  const next = join(dir, CA_FILES.nextCert);
  const nextKey = join(dir, CA_FILES.nextKey);
  switch (phase) {
    case "prepare": {
      if (existsSync(next)) throw new Error(`a next root is already prepared (${next}); run the 'activate' phase`);
      const root = generateRoot(trustDomain);
      writeFileSecure(nextKey, root.keyPem, 0o600);
      writeFileSecure(next, root.certPem, 0o644);
      return `prepared next root ${fingerprint256(new X509Certificate(root.certPem)).slice(0, 16)}: agents now trust it; once they all have the new bundle, run 'activate'`;
    }
    case "activate": {
      if (!existsSync(next) || !existsSync(nextKey)) throw new Error("no next root is prepared; run the 'prepare' phase first");
      const old = readFileSync(cur, "utf8");
      const oldFp = fingerprint256(new X509Certificate(old));
      writeFileSecure(join(dir, CA_FILES.trustedDir, `root-${oldFp.slice(0, 16)}.pem`), old, 0o644);
      // Key first; a crash before the certificate is renamed is completed by the next load.
      renameSync(nextKey, join(dir, CA_FILES.rootKey));
      renameSync(next, cur);
      return `the new root signs now; the old root ${oldFp.slice(0, 16)} stays trusted. After the longest certificate lifetime, run 'finish'`;
    }
    case "finish": {
      const t = join(dir, CA_FILES.trustedDir);
      const removed = existsSync(t) ? readdirSync(t).filter((f) => f.endsWith(".pem")) : [];
      for (const f of removed) rmSync(join(t, f));
      return removed.length ? `no longer trusted: ${removed.join(", ")}` : "no old roots were trusted";
    }
  }
}
