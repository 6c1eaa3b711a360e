import { once } from "node:events";
import type { Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { abortSocket } from "../../agent/proxy/abort.js";
import { closeTcpPairs, tcpPair } from "../helpers/tcp-pair.js";

afterEach(closeTcpPairs);

/** How far's side ended: the error code of a reset, or "end" for a FIN. */
function outcome(far: Socket): Promise<string> {
  return new Promise((resolve) => {
    far.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    far.once("end", () => resolve("end"));
  });
}

describe("abortSocket", () => {
  it("resets an open connection", async () => {
    const [near, far] = await tcpPair();
    const seen = outcome(far);
    abortSocket(near);
    await once(near, "close");
    expect(await seen).toBe("ECONNRESET");
  });

  it("resets, and closes, a socket whose end() is still under way (Node's resetAndDestroy fails there and never closes it)", async () => {
    const [near, far] = await tcpPair();
    const seen = outcome(far);
    near.on("error", () => undefined);
    near.end();
    abortSocket(near);
    await once(near, "close");
    expect(await seen).toBe("ECONNRESET");
  });
});
