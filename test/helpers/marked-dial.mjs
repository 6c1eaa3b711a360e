// Dials host:port the way the node proxy dials a passthrough destination (agent/proxy/dial.ts,
// built to dist/), with the given SO_MARK; prints one JSON line {ok, reply?, code?}.
// Usage: marked-dial.mjs <host> <port> <mark> [timeoutMs]
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const [host, port, mark, timeout] = process.argv.slice(2);
const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const { dial } = await import(pathToFileURL(join(root, "dist", "agent", "proxy", "dial.js")).href);
const done = (r) => {
  console.log(JSON.stringify(r));
  process.exit(0);
};
try {
  const sock = await dial({ ip: host, port: Number(port) }, Number(timeout ?? 2000), { mark: Number(mark) });
  let reply = "";
  sock.resume();
  sock.on("data", (d) => {
    reply += d;
  });
  sock.on("end", () => done({ ok: true, reply }));
  sock.on("error", (e) => done({ ok: false, code: e.code }));
  sock.end("x");
} catch (e) {
  done({ ok: false, code: e.errno ?? e.code ?? String(e) });
}
