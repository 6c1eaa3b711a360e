/** HTTP/2 stream helpers for proxy tests. */
import type { ClientHttp2Stream } from "node:http2";
import { type AddressInfo, createServer } from "node:net";

/** Reads a CONNECT stream to its end: the response status and every byte of the body. */
export function readAll(stream: ClientHttp2Stream): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    let status = 0;
    let body = "";
    stream.on("response", (h) => {
      status = Number(h[":status"]);
    });
    stream.on("data", (d: Buffer) => {
      body += d.toString();
    });
    stream.on("end", () => resolve({ status, body }));
    stream.on("error", reject);
  });
}

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const p = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return p;
}
