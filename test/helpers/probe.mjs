// A tiny network probe run inside pods by tests (plain Node, no build step):
//   probe.mjs echo-server <port> [host]   echo every byte back; prints "listening <port>"
//   probe.mjs connect <host> <port> <message> [timeoutMs]
//       prints one JSON line: {ok, reply, localAddress, localPort, remoteAddress, remotePort, code, ms}
import net from "node:net";

const [mode, ...args] = process.argv.slice(2);

if (mode === "echo-server") {
  const port = Number(args[0]);
  const server = net.createServer((s) => {
    s.on("error", () => {});
    s.pipe(s);
  });
  server.listen(port, args[1] ?? "0.0.0.0", () => console.log(`listening ${port}`));
} else if (mode === "connect") {
  const [host, port, message, timeout] = args;
  const started = process.hrtime.bigint();
  const ms = () => Number(process.hrtime.bigint() - started) / 1e6;
  const sock = net.connect({ host, port: Number(port) });
  let reply = "";
  const done = (result) => {
    console.log(JSON.stringify({ ...result, ms: ms() }));
    sock.destroy();
    process.exit(0);
  };
  sock.setTimeout(Number(timeout ?? 5000), () => done({ ok: false, code: "ETIMEDOUT" }));
  sock.on("connect", () => sock.end(message ?? "ping"));
  sock.on("data", (d) => {
    reply += d;
  });
  sock.on("end", () =>
    done({
      ok: true,
      reply,
      localAddress: sock.localAddress,
      localPort: sock.localPort,
      remoteAddress: sock.remoteAddress,
      remotePort: sock.remotePort,
    }),
  );
  sock.on("error", (e) => done({ ok: false, code: e.code }));
} else {
  console.error(`usage: probe.mjs echo-server <port> | connect <host> <port> <message> [timeoutMs]`);
  process.exit(2);
}
