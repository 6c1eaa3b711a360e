// An independent HBONE client for interoperability tests: plain Node (node:tls and node:http2
// only), none of weft's code. It does what ztunnel does: TLS 1.3 to <pod IP>:15008 with its mesh
// certificate and no SNI, checks the server's SPIFFE id, sends CONNECT <authority>, writes a
// message and prints one JSON line: {status, reply, serverId, error}.
//   hbone-client.mjs <host> <authority> <cert> <key> <ca> <expectedServerId|-> <message> [forwarded]
import { readFileSync } from "node:fs";
import http2 from "node:http2";
import tls from "node:tls";

const [host, authority, cert, key, ca, expected, message, forwarded] = process.argv.slice(2);
const out = (r) => {
  console.log(JSON.stringify(r));
  process.exit(0);
};
setTimeout(() => out({ error: "timeout" }), 8000).unref();

const socket = tls.connect({
  host,
  port: 15008,
  // An IP address is never sent as SNI: the server must pick its identity by the address dialled.
  cert: readFileSync(cert),
  key: readFileSync(key),
  ca: readFileSync(ca),
  ALPNProtocols: ["h2"],
  minVersion: "TLSv1.3",
  checkServerIdentity: (_h, c) => {
    const id = (c.subjectaltname ?? "").replace(/^URI:/, "");
    if (expected !== "-" && id !== expected) return new Error(`server presented ${id}, expected ${expected}`);
    return undefined;
  },
});
socket.on("error", (e) => out({ error: e.code ?? e.message }));
socket.once("secureConnect", () => {
  const serverId = (socket.getPeerCertificate().subjectaltname ?? "").replace(/^URI:/, "");
  const session = http2.connect(`https://${host}:15008`, { createConnection: () => socket });
  session.on("error", (e) => out({ serverId, error: e.code ?? e.message }));
  const headers = { ":method": "CONNECT", ":authority": authority };
  if (forwarded) headers.forwarded = forwarded;
  const stream = session.request(headers);
  let status = 0;
  let reply = "";
  stream.on("response", (h) => {
    status = Number(h[":status"]);
    if (status !== 200) out({ status, serverId });
    stream.end(message);
  });
  stream.on("data", (d) => {
    reply += d;
  });
  stream.on("end", () => out({ status, reply, serverId }));
  stream.on("error", (e) => out({ status, serverId, error: e.code ?? e.message }));
});
