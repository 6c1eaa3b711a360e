// A tiny network probe run inside pods by tests (plain Node, no build step):
//   probe.mjs echo-server <port> [host]   echo every byte back; prints "listening <port>"
//   probe.mjs whoami-server <port>        first line back is the client address as seen, then echo
//   probe.mjs hold <host> <port> <ms>     keep one connection busy; JSON {ok, rounds, failures}
//   probe.mjs many <host> <port> <n> <c>  n echo connections, c at a time; JSON {ok, failed, errors}
//   probe.mjs hold-until <host> <port> <file> <timeoutMs>
//       one echo connection, a round trip every 200 ms, until <file> exists; then one last round.
//       Prints "open" once connected; at the end JSON {ok, rounds, code}: ok false when the
//       connection failed or closed, or a round got no echo within timeoutMs.
//   probe.mjs connect <host> <port> <message> [timeoutMs]
//       prints one JSON line: {ok, reply, localAddress, localPort, remoteAddress, remotePort, code, ms}
import { execFileSync } from "node:child_process";
import net from "node:net";

/**
 * How a connection that reads EOF ended. Node can report a reset as a plain end: a write racing
 * the RST takes its error (dropped by Node once the read side has ended the socket) and the next
 * read sees EOF. A FIN leaves the socket in CLOSE-WAIT (half-open allowed, nothing sent back
 * yet); a reset leaves it closed.
 */
function endedBy(sock) {
  const filter = ["(", "sport", "=", `:${sock.localPort}`, ")"];
  const finned =
    execFileSync("ss", ["-Htn", "state", "close-wait", ...filter])
      .toString()
      .trim() !== "";
  return finned ? { code: "closed" } : { code: "ECONNRESET", resetSeenAsEof: true };
}

const [mode, ...args] = process.argv.slice(2);

if (mode === "echo-server") {
  const port = Number(args[0]);
  const server = net.createServer((s) => {
    s.on("error", () => {});
    s.pipe(s);
  });
  server.listen(port, args[1] ?? "0.0.0.0", () => console.log(`listening ${port}`));
} else if (mode === "whoami-server") {
  // First line back is the client address as the server sees it, then an echo.
  const port = Number(args[0]);
  const server = net.createServer((s) => {
    s.on("error", () => {});
    s.write(`${s.remoteAddress}\n`);
    s.pipe(s);
  });
  server.listen(port, "0.0.0.0", () => console.log(`listening ${port}`));
} else if (mode === "hold") {
  // One connection kept busy for durationMs: a message every 50 ms, each to come back in order.
  // A late echo is no failure (a loaded machine is slow, not broken); one that has not come 10 s
  // after the last was sent, or an error on the connection, is.
  const [host, port, duration] = args;
  // Half-open allowed, so an end can be told apart from a reset (endedBy) before Node answers it.
  const sock = net.connect({ host, port: Number(port), allowHalfOpen: true });
  const sent = [];
  let rounds = 0;
  let stopped = false;
  let buf = "";
  let done = false;
  const finish = (extra) => {
    if (done) return;
    done = true;
    const failures = sent.length - rounds;
    console.log(JSON.stringify({ ok: failures === 0 && rounds > 0 && !extra.code, rounds, failures, ...extra }));
    sock.destroy();
    process.exit(0);
  };
  sock.on("error", (e) => finish({ code: e.code }));
  sock.on("end", () => finish(endedBy(sock)));
  sock.on("close", () => finish({ code: "closed" }));
  sock.on("data", (d) => {
    buf += d;
    while (rounds < sent.length) {
      const at = buf.indexOf(sent[rounds]);
      if (at < 0) break;
      buf = buf.slice(at + sent[rounds].length);
      rounds++;
    }
    if (stopped && rounds === sent.length) finish({});
  });
  sock.on("connect", () => {
    const until = Date.now() + Number(duration);
    const tick = setInterval(() => {
      if (Date.now() > until) {
        clearInterval(tick);
        stopped = true;
        if (rounds === sent.length) finish({});
        else setTimeout(() => finish({}), 10_000);
        return;
      }
      const m = `r${sent.length}-${Date.now()};`;
      sent.push(m);
      sock.write(m);
    }, 50);
  });
} else if (mode === "hold-until") {
  const [host, port, file, timeout] = args;
  const { existsSync } = await import("node:fs");
  const sock = net.connect({ host, port: Number(port) });
  let rounds = 0;
  let buf = "";
  let waiting = null;
  const finish = (ok, code) => {
    console.log(JSON.stringify({ ok, rounds, ...(code ? { code } : {}) }));
    sock.destroy();
    process.exit(0);
  };
  sock.on("error", (e) => finish(false, e.code ?? "ERR"));
  sock.on("close", () => finish(false, "closed"));
  sock.on("data", (d) => {
    buf += d;
    if (waiting && buf.includes(waiting.msg)) {
      clearTimeout(waiting.timer);
      const last = waiting.last;
      waiting = null;
      rounds++;
      if (last) finish(true);
      else setTimeout(round, 200);
    }
  });
  const round = () => {
    const msg = `r${rounds};`;
    const last = existsSync(file);
    waiting = { msg, last, timer: setTimeout(() => finish(false, "no echo"), Number(timeout)) };
    sock.write(msg);
  };
  sock.on("connect", () => {
    console.log("open");
    round();
  });
} else if (mode === "many") {
  // n connections, c at a time, each must echo its message back; counts failures.
  const [host, port, n, c] = args.map((x, i) => (i === 0 ? x : Number(x)));
  let next = 0;
  let ok = 0;
  let failed = 0;
  const errors = {};
  const one = () =>
    new Promise((resolve) => {
      const i = next++;
      const msg = `m${i}`;
      let got = "";
      const s = net.connect({ host, port });
      const done = (err) => {
        if (err) {
          failed++;
          errors[err] = (errors[err] ?? 0) + 1;
        } else ok++;
        s.destroy();
        resolve();
      };
      s.setTimeout(10000, () => done("ETIMEDOUT"));
      s.on("connect", () => s.end(msg));
      s.on("data", (d) => {
        got += d;
      });
      s.on("end", () => done(got.endsWith(msg) ? null : "BADREPLY"));
      s.on("error", (e) => done(e.code ?? "ERR"));
    });
  const worker = async () => {
    while (next < n) await one();
  };
  await Promise.all(Array.from({ length: c }, worker));
  console.log(JSON.stringify({ ok, failed, errors }));
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
  console.error(
    "usage: probe.mjs echo-server <port> | whoami-server <port> | connect <host> <port> <message> [timeoutMs] | hold <host> <port> <ms> | many <host> <port> <n> <concurrency>",
  );
  process.exit(2);
}
