/** Opening an authenticated HBONE session to a peer node: TLS 1.3 with SPIFFE certs, then HTTP/2. */
import { type ClientHttp2Session, connect as h2connect } from "node:http2";
import { connect as tlsConnect } from "node:tls";
import type { ProxyContext } from "./context.js";
import { MESH_TLS_VERSION, onCredentialExpiry, parseBundle, peerCredential, stillTrusted } from "./peer-credential.js";
import type { PoolKey, SessionFactory } from "./pool.js";
import { expectIdentity, HBONE_ALPN, identitySni } from "./tls.js";

/** A session factory presenting the source identity and requiring the destination identity. */
export function hboneConnector(ctx: Omit<ProxyContext, "pool">): SessionFactory {
  return async (key: PoolKey): Promise<ClientHttp2Session> => {
    const cert = ctx.identity.cached(key.srcIdentity) ?? (await ctx.identity.certificate(key.srcIdentity));
    const secureContext = ctx.contexts.get(cert, ctx.identity.trustBundle());
    const { ip, port } = key.address;
    const socket = tlsConnect({
      host: ip,
      port,
      servername: identitySni(key.dstIdentity),
      secureContext,
      ALPNProtocols: HBONE_ALPN,
      minVersion: MESH_TLS_VERSION,
      maxVersion: MESH_TLS_VERSION,
      rejectUnauthorized: true,
      checkServerIdentity: expectIdentity(key.dstIdentity),
    });
    socket.setNoDelay(true);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(
          new Error(
            `HBONE connection to ${ip}:${port} timed out after ${ctx.config.connectTimeoutMs} ms: is the weft agent running on that node, and is port 15008 reachable?`,
          ),
        );
      }, ctx.config.connectTimeoutMs);
      socket.once("secureConnect", () => {
        clearTimeout(timer);
        socket.removeAllListeners("error");
        resolve();
      });
      socket.once("error", (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        const hint = e.code === "ECONNREFUSED" ? ": is the weft agent running on that node?" : "";
        reject(new Error(`HBONE connection to ${ip}:${port} for ${key.dstIdentity} failed: ${e.message}${hint}`));
      });
    });
    const credential = peerCredential(socket, ctx.view().data.trustDomain);
    if ("refused" in credential) {
      socket.destroy();
      throw new Error(`HBONE connection to ${ip}:${port} for ${key.dstIdentity} refused: ${credential.refused}`);
    }
    const session = h2connect(`https://${ip}:${port}`, {
      createConnection: () => socket,
      settings: { initialWindowSize: ctx.config.streamWindowBytes, enablePush: false },
      maxSessionMemory: 256,
    });
    session.on("error", (e) => ctx.log.debug({ peer: `${ip}:${port}`, err: e.message }, "HBONE session error"));
    session.once("connect", () => session.setLocalWindowSize(ctx.config.sessionWindowBytes));
    // The server's certificate bounds the session: once it expires, or the root that vouched for
    // it leaves the bundle, the session takes no new streams (the pool then opens a fresh one).
    const cancelExpiry = onCredentialExpiry(credential.notAfter, () => session.close());
    const offBundle = ctx.identity.onChange(() => {
      if (!stillTrusted(credential.top, parseBundle(ctx.identity.trustBundle()))) session.close();
    });
    session.once("close", () => {
      cancelExpiry();
      offBundle();
    });
    return session;
  };
}
