import { X509Certificate } from "node:crypto";
import { afterAll, describe, expect, it, vi } from "vitest";
import { DEFAULT_PROXY_LIMITS, KeyedCounter } from "../../agent/proxy/limits.js";
import { onCredentialExpiry, parseBundle, stillTrusted } from "../../agent/proxy/peer-credential.js";
import { parseLimits } from "../../controller/api/limit-settings.js";
import { TestPki } from "../helpers/test-pki.js";

describe("peer credentials", () => {
  const pki = new TestPki();
  const other = new TestPki("other-root");
  afterAll(() => {
    pki.dispose();
    other.dispose();
  });

  it("a chain stays trusted while a root of the bundle signed it", () => {
    const leaf = new X509Certificate(pki.issue("spiffe://cluster.local/ns/a/sa/b").certChainPem);
    expect(stillTrusted(leaf, parseBundle([pki.rootPem]))).toBe(true);
    expect(stillTrusted(leaf, parseBundle([other.rootPem, pki.rootPem]))).toBe(true);
    expect(stillTrusted(leaf, parseBundle([other.rootPem]))).toBe(false);
    expect(stillTrusted(leaf, parseBundle(["not a pem"]))).toBe(false);
  });

  it("fires at the credential's notAfter, and not once cancelled", () => {
    vi.useFakeTimers();
    try {
      const fired: string[] = [];
      onCredentialExpiry(Date.now() + 5000, () => fired.push("a"));
      const cancel = onCredentialExpiry(Date.now() + 5000, () => fired.push("b"));
      cancel();
      vi.advanceTimersByTime(4999);
      expect(fired).toEqual([]);
      vi.advanceTimersByTime(1);
      expect(fired).toEqual(["a"]);
      onCredentialExpiry(Date.now() - 1, () => fired.push("past"));
      expect(fired).toEqual(["a", "past"]);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("limit settings", () => {
  it("overrides defaults by name and names what is wrong", () => {
    const errors: string[] = [];
    expect(parseLimits(DEFAULT_PROXY_LIMITS, ["maxConnectionsPerPeer=2048"], "--limit", errors).maxConnectionsPerPeer).toBe(2048);
    expect(errors).toEqual([]);
    parseLimits(DEFAULT_PROXY_LIMITS, ["nope=1", "maxHeaderBytes=0", "maxHeaderBytes=-1", "junk"], "--limit", errors);
    expect(errors).toEqual([
      expect.stringMatching(/--limit 'nope=1': unknown limit 'nope' \(known: handshakeTimeoutMs/),
      "--limit 'maxHeaderBytes=0': must be at least 1",
      "--limit 'maxHeaderBytes=-1': expected <name>=<positive integer>",
      "--limit 'junk': expected <name>=<positive integer>",
    ]);
  });

  it("counts per key up to a limit", () => {
    const c = new KeyedCounter();
    expect([c.take("p", 2), c.take("p", 2), c.take("p", 2)]).toEqual([true, true, false]);
    c.release("p");
    expect(c.take("p", 2)).toBe(true);
    expect(c.count("q")).toBe(0);
  });
});
