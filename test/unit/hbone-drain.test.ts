/**
 * Draining an HBONE session at a handover (agent/proxy/goaway.ts): the draining side's PING makes
 * the peer's pool open new streams on a new session while the stream already open on the old one
 * keeps carrying data, and no stream is refused; the session closes once its streams are done.
 */
import { once } from "node:events";
import { type ClientHttp2Session, connect, createServer, type Http2Server, type ServerHttp2Session } from "node:http2";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { drainSession } from "../../agent/proxy/goaway.js";
import { HbonePool } from "../../agent/proxy/pool.js";
import { waitFor } from "../helpers/wait.js";

const key = { srcIdentity: "a", dstIdentity: "b", address: { ip: "127.0.0.1", port: 0 } };

describe("HBONE session drain", () => {
  let server: Http2Server | undefined;
  const clients: ClientHttp2Session[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.destroy();
    server?.close();
    server = undefined;
  });

  it("moves new streams to a new session, finishes the open one, refuses none", async () => {
    const sessions: ServerHttp2Session[] = [];
    const refused: number[] = [];
    // An echo "CONNECT" server over h2c.
    server = createServer();
    server.on("session", (s) => sessions.push(s));
    server.on("stream", (stream) => {
      stream.respond({ ":status": 200 });
      stream.pipe(stream);
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const port = (server.address() as AddressInfo).port;
    const pool = new HbonePool(async () => {
      const c = connect(`http://127.0.0.1:${port}`);
      clients.push(c);
      await once(c, "connect");
      return c;
    });
    const open = async () => {
      const s = await pool.stream(key, { ":method": "CONNECT", ":authority": "10.0.0.1:80" });
      s.on("close", () => {
        if (s.rstCode) refused.push(s.rstCode);
      });
      await once(s, "response");
      return s;
    };
    const echo = async (s: Awaited<ReturnType<typeof open>>, text: string) => {
      s.write(text);
      let got = "";
      while (!got.includes(text)) got += String((await once(s, "data"))[0]);
      return got;
    };

    const long = await open();
    expect(await echo(long, "before")).toBe("before");
    expect(pool.sessionsOpened).toBe(1);
    // A long grace: only the PING, not the later GOAWAY, can be what the pool reacts to.
    drainSession(sessions[0] as ServerHttp2Session, 60_000);
    await waitFor("the pool sees the drain", () => pool.stats()[0]?.sessions.every((x) => x.draining) ?? false, 5000);

    const fresh = await open();
    expect(pool.sessionsOpened).toBe(2);
    expect(await echo(fresh, "new")).toBe("new");
    expect(await echo(long, "still")).toBe("still");
    long.end();
    await waitFor("the drained session closes once its stream is done", () => sessions[0]?.closed || sessions[0]?.destroyed, 5000);
    expect(sessions[1]?.closed).toBe(false);
    expect(refused).toEqual([]);
    fresh.end();
    await pool.close(true);
  });
});
