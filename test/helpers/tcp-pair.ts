/** Connected TCP socket pairs on loopback, for tests of code that holds one end. */
import { once } from "node:events";
import { connect, createServer, type Server, type Socket } from "node:net";

const servers: Server[] = [];

/** A connected pair on 127.0.0.1, both ends half-open allowed: [the connecting end, the accepted end]. */
export async function tcpPair(): Promise<[Socket, Socket]> {
  const server = createServer({ allowHalfOpen: true });
  servers.push(server);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const accepted = once(server, "connection") as Promise<[Socket]>;
  const near = connect({ port: (server.address() as { port: number }).port, host: "127.0.0.1", allowHalfOpen: true });
  const [far] = await accepted;
  await once(near, "connect").catch(() => undefined);
  return [near, far];
}

/** Stops the listeners tcpPair made (for afterEach). */
export function closeTcpPairs(): void {
  for (const s of servers.splice(0)) s.close();
}
