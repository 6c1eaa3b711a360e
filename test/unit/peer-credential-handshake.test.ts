/**
 * peerCredential over real TLS 1.3 handshakes: a workload certificate chained to the bundle's
 * root is accepted with its SPIFFE id; a CA certificate carrying a SPIFFE id, though the same
 * root signed it (so TLS verification passes), is refused: an SVID is a leaf.
 */
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { connect, createServer, type TLSSocket } from "node:tls";
import { afterAll, describe, expect, it } from "vitest";
import type { WorkloadCertificate } from "../../agent/identity/types.js";
import { type PeerCredential, peerCredential } from "../../agent/proxy/peer-credential.js";
import { TestPki } from "../helpers/test-pki.js";

const ID = "spiffe://cluster.local/ns/app/sa/client";

describe("peerCredential after a TLS handshake", () => {
  const pki = new TestPki();
  afterAll(() => pki.dispose());

  /** What the server concludes of a client presenting `client`, and whether TLS verified it. */
  async function serverView(
    client: WorkloadCertificate,
  ): Promise<{ authorized: boolean; credential: PeerCredential | { refused: string } }> {
    const server = pki.issue("spiffe://cluster.local/ns/app/sa/server");
    const srv = createServer({
      cert: server.certChainPem,
      key: server.keyPem,
      ca: [pki.rootPem],
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: "TLSv1.3",
    });
    const seen = new Promise<{ authorized: boolean; credential: PeerCredential | { refused: string } }>((resolve) =>
      srv.on("secureConnection", (s: TLSSocket) => {
        resolve({ authorized: s.authorized, credential: peerCredential(s, "cluster.local") });
        s.end();
      }),
    );
    srv.listen(0, "127.0.0.1");
    await once(srv, "listening");
    const c = connect({
      host: "127.0.0.1",
      port: (srv.address() as AddressInfo).port,
      cert: client.certChainPem,
      key: client.keyPem,
      ca: [pki.rootPem],
      checkServerIdentity: () => undefined,
      minVersion: "TLSv1.3",
    });
    c.on("error", () => {});
    try {
      return await seen;
    } finally {
      c.destroy();
      srv.close();
    }
  }

  it("accepts a workload certificate chained to the bundle's root, with its SPIFFE id", async () => {
    const r = await serverView(pki.issue(ID));
    expect(r.authorized).toBe(true);
    expect(r.credential).toMatchObject({ identity: ID });
  });

  it("refuses a CA certificate presented as a workload's, though the bundle's root signed it", async () => {
    const r = await serverView(pki.issue(ID, { ca: true }));
    // TLS itself let it through: the refusal is peerCredential's.
    expect(r.authorized).toBe(true);
    expect(r.credential).toEqual({ refused: `peer certificate for ${ID} is a CA certificate, not a workload's` });
  });
});
