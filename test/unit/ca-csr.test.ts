/** CSRs: weft's own (forge.asn1 + Node crypto) and OpenSSL's, good and bad, with the CA's reasons. */
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CsrError, checkCsrIdentity, createCsr, parseCsr } from "../../common/pki/csr.js";
import { runSync } from "../../native/exec.js";

const ID = "spiffe://cluster.local/ns/shop/sa/web";
const dir = mkdtempSync(join(tmpdir(), "weft-csr-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
/** A CSR made by the openssl CLI (an independent implementation). */
function opensslCsr(keyArgs: string[], san: string | null, digest = "-sha256"): string {
  const i = ++n;
  const key = join(dir, `k${i}.pem`);
  const csr = join(dir, `c${i}.pem`);
  runSync("openssl", ["genpkey", ...keyArgs, "-out", key]);
  runSync("openssl", [
    "req",
    "-new",
    "-key",
    key,
    "-subj",
    "/O=test",
    ...(digest ? [digest] : []),
    ...(san ? ["-addext", `subjectAltName=${san}`] : []),
    "-out",
    csr,
  ]);
  return readFileSync(csr, "utf8");
}

function refusal(fn: () => void): { code: string; weftCode: string; message: string } {
  try {
    fn();
  } catch (e) {
    if (e instanceof CsrError) return { code: e.reason, weftCode: e.code, message: e.message };
    throw e;
  }
  throw new Error("expected a refusal");
}

describe("CSRs", () => {
  it("builds an ECDSA P-256 CSR the CA accepts, and OpenSSL reads", () => {
    const keys = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    const pem = createCsr(ID, keys);
    const info = parseCsr(pem);
    expect(info.uris).toEqual([ID]);
    expect(info.publicKey.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    expect(() => checkCsrIdentity(info, ID)).not.toThrow();
    const path = join(dir, "weft.csr");
    writeFileSync(path, pem);
    const text = runSync("openssl", ["req", "-in", path, "-noout", "-text", "-verify"]);
    expect(text.stdout + text.stderr).toMatch(/verify OK|Certificate request self-signature verify OK/);
    expect(text.stdout).toContain(`URI:${ID}`);
  });

  it("accepts OpenSSL's P-256 and RSA-2048 CSRs", () => {
    for (const key of [
      ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
      ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    ]) {
      const info = parseCsr(opensslCsr(key, `URI:${ID}`));
      expect(() => checkCsrIdentity(info, ID)).not.toThrow();
    }
  });

  it.each([
    ["RSA-1024", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"], /RSA key of 1024 bits is too weak/],
    ["P-384", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"], /curve secp384r1 is not accepted: use ECDSA P-256/],
    ["Ed25519", ["-algorithm", "ED25519"], /key type ed25519 is not accepted/],
  ])("refuses a weak or unsupported key (%s)", (_name, key, why) => {
    const r = refusal(() => parseCsr(opensslCsr(key, `URI:${ID}`, key[1] === "ED25519" ? "" : "-sha256")));
    expect(r.code).toBe("WEAK_KEY");
    expect(r.message).toMatch(why);
  });

  it.each([
    [
      "another identity",
      `URI:spiffe://cluster.local/ns/shop/sa/admin`,
      /URI SAN 'spiffe:\/\/cluster.local\/ns\/shop\/sa\/admin' is not the requested identity/,
    ],
    ["two identities", `URI:${ID},URI:spiffe://cluster.local/ns/x/sa/y`, /exactly one URI SAN.*it has 2/],
    ["no SAN", null, /exactly one URI SAN.*it has 0/],
    ["a DNS name besides the id", `URI:${ID},DNS:evil.example`, /DNS, IP or other SANs/],
    ["an IP besides the id", `URI:${ID},IP:10.0.0.1`, /DNS, IP or other SANs/],
  ])("refuses a CSR with the wrong SAN (%s)", (_name, san, why) => {
    const info = parseCsr(opensslCsr(["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"], san));
    const r = refusal(() => checkCsrIdentity(info, ID));
    expect(r.code).toBe("BAD_SAN");
    expect(r.message).toMatch(why);
  });

  it("refuses a CSR whose signature does not verify (tampered)", () => {
    const keys = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    const pem = createCsr(ID, keys);
    const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ""), "base64");
    const at = der.indexOf(Buffer.from("ns/shop"));
    der[at + 3] = "x".charCodeAt(0); // "ns/xhop": same length, still valid DER
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString("base64")}\n-----END CERTIFICATE REQUEST-----\n`;
    expect(refusal(() => parseCsr(tampered))).toMatchObject({ code: "BAD_SIGNATURE", message: expect.stringMatching(/does not verify/) });
  });

  it("refuses a SHA-1 signature", () => {
    const r = refusal(() => parseCsr(opensslCsr(["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"], `URI:${ID}`, "-sha1")));
    expect(r.code).toBe("UNSUPPORTED_ALGORITHM");
  });

  it.each([
    ["not PEM", "hello", /no BEGIN CERTIFICATE REQUEST block/],
    ["garbage inside", "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----", /not valid DER PKCS#10/],
    [
      "truncated",
      () => createCsr(ID, generateKeyPairSync("ec", { namedCurve: "prime256v1" })).replace(/\n[A-Za-z0-9+/=]+\n-----END/, "\n-----END"),
      /not valid DER PKCS#10|truncated/,
    ],
    ["huge", `-----BEGIN CERTIFICATE REQUEST-----\n${"A".repeat(40_000)}\n-----END CERTIFICATE REQUEST-----`, /larger than|too large/],
  ])("refuses a malformed CSR (%s) with a reason", (_name, input, why) => {
    const pem = typeof input === "function" ? input() : input;
    const r = refusal(() => parseCsr(pem));
    expect(r.code).toBe("MALFORMED");
    expect(r.weftCode).toBe("WEFT_CERTIFICATE");
    expect(r.message).toMatch(why);
  });
});
