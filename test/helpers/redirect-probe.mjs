// Network probe for redirect tests and the capture benchmark (plain Node, run inside pods/nodes):
//   proxy-listen <host> <port>
//       a stand-in for the node proxy. Each accepted connection first gets one JSON line:
//       {local, localPort, remote, remotePort} as the accepted socket reports them (getsockname
//       and getpeername). Then, if the client sends "DIAL <ip> <port>\n", the listener itself
//       dials ip:port, sends "hello", and answers one JSON line {ok, reply, code}; any other
//       data is echoed. Prints "listening <host>:<port>" when ready.
//   connect <host> <port> <message> [timeoutMs] [localAddress]
//       one connection (bound to localAddress when given): sends message, half-closes, reads to the end; prints one JSON line
//       {ok, reply, localAddress, localPort, remoteAddress, remotePort, code, ms}, the addresses as
//       the app sees them right after connect (getsockname/getpeername).
//   hold <host> <port> <maxMs>
//       one long-lived connection: prints {"event":"connected",...}, then pings every 50 ms and
//       checks each echo until stdin says "stop" (or maxMs passes); prints one JSON summary
//       {ok, pings, echoed, error}. Shows whether an established connection survived changes.
//   bench <iterations> <host:port> [<host:port> ...]
//       connect() latency per target, targets interleaved round-robin; prints one JSON line
//       {targets: [{target, median, p90, mean, n, errors}]} in microseconds.
import net from "node:net";

const [mode, ...args] = process.argv.slice(2);

function line(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

if (mode === "proxy-listen") {
  const [host, port] = args;
  // allowHalfOpen: a client may send "DIAL …" and half-close before the dial's answer is back.
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    let buf = "";
    let dialing = false;
    s.on("error", () => {});
    s.on("end", () => {
      if (!dialing) s.end();
    });
    s.write(`${JSON.stringify({ local: s.localAddress, localPort: s.localPort, remote: s.remoteAddress, remotePort: s.remotePort })}\n`);
    s.on("data", (d) => {
      if (dialing) return;
      buf += d;
      if (!buf.startsWith("DIAL")) {
        s.write(d);
        buf = "";
        return;
      }
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      dialing = true;
      const [, ip, p] = buf.slice(0, nl).split(" ");
      const out = net.connect({ host: ip, port: Number(p) });
      let reply = "";
      const done = (r) => {
        out.destroy();
        s.end(`${JSON.stringify(r)}\n`);
      };
      out.setTimeout(3000, () => done({ ok: false, code: "ETIMEDOUT" }));
      out.on("connect", () => out.end("hello"));
      out.on("data", (x) => {
        reply += x;
      });
      out.on("end", () => done({ ok: true, reply, local: out.localAddress }));
      out.on("error", (e) => done({ ok: false, code: e.code }));
    });
  });
  server.listen(Number(port), host, () => console.log(`listening ${host}:${port}`));
} else if (mode === "connect") {
  const [host, port, message, timeout, localAddress] = args;
  const started = process.hrtime.bigint();
  const sock = net.connect({ host, port: Number(port), ...(localAddress ? { localAddress } : {}) });
  let reply = "";
  let seen = {};
  const done = (r) => {
    line({ ...r, ...seen, ms: Number(process.hrtime.bigint() - started) / 1e6 });
    sock.destroy();
    process.exit(0);
  };
  sock.setTimeout(Number(timeout ?? 5000), () => done({ ok: false, code: "ETIMEDOUT", reply }));
  sock.on("connect", () => {
    seen = { localAddress: sock.localAddress, localPort: sock.localPort, remoteAddress: sock.remoteAddress, remotePort: sock.remotePort };
    sock.end(message.replace(/\\n/g, "\n"));
  });
  sock.on("data", (d) => {
    reply += d;
  });
  sock.on("end", () => done({ ok: true, reply }));
  sock.on("error", (e) => done({ ok: false, code: e.code, reply }));
} else if (mode === "hold") {
  const [host, port, maxMs] = args;
  const sock = net.connect({ host, port: Number(port) });
  let pings = 0;
  let echoed = 0;
  let pendingBytes = "";
  let finished = false;
  const finish = (error) => {
    if (finished) return;
    finished = true;
    line({ ok: !error && echoed === pings && pings > 0, pings, echoed, error: error ?? null });
    sock.destroy();
    process.exit(0);
  };
  let timer;
  sock.on("connect", () => {
    line({
      event: "connected",
      localAddress: sock.localAddress,
      localPort: sock.localPort,
      remoteAddress: sock.remoteAddress,
      remotePort: sock.remotePort,
    });
    timer = setInterval(() => {
      pings++;
      const msg = `ping${pings};`;
      pendingBytes += msg;
      sock.write(msg);
    }, 50);
  });
  sock.on("data", (d) => {
    // The first line may be a proxy-listen banner; count only echoed ping bytes.
    let text = d.toString();
    if (text.includes("\n")) text = text.slice(text.lastIndexOf("\n") + 1);
    for (const ch of text) {
      if (pendingBytes.length === 0) break;
      if (pendingBytes[0] !== ch) return finish(`unexpected byte '${ch}'`);
      pendingBytes = pendingBytes.slice(1);
      if (ch === ";") echoed++;
    }
  });
  sock.on("error", (e) => finish(e.code ?? e.message));
  sock.on("close", () => finish("closed by peer"));
  process.stdin.on("data", (d) => {
    if (d.toString().includes("stop")) {
      clearInterval(timer);
      // Let the last echo come back before judging.
      setTimeout(() => finish(null), 200);
    }
  });
  setTimeout(() => finish(null), Number(maxMs ?? 20000));
} else if (mode === "bench") {
  const [iterations, ...targets] = args;
  const n = Number(iterations);
  const samples = targets.map(() => []);
  const errors = targets.map(() => 0);
  const once = (target) =>
    new Promise((resolve) => {
      const [host, port] = target.split(":");
      const t0 = process.hrtime.bigint();
      const s = net.connect({ host, port: Number(port) });
      s.on("connect", () => {
        const us = Number(process.hrtime.bigint() - t0) / 1000;
        s.destroy();
        resolve(us);
      });
      s.on("error", () => resolve(null));
    });
  const stats = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
    return { median: q(0.5), p90: q(0.9), mean: s.reduce((a, b) => a + b, 0) / s.length, n: s.length };
  };
  // Warm-up: JIT, ARP/neighbour entries, accept queues.
  for (let i = 0; i < 200; i++) for (const t of targets) await once(t);
  for (let i = 0; i < n; i++) {
    // Rotate the order each round so neither variant always goes first.
    for (let k = 0; k < targets.length; k++) {
      const j = (i + k) % targets.length;
      const us = await once(targets[j]);
      if (us === null) errors[j]++;
      else samples[j].push(us);
    }
  }
  line({ targets: targets.map((t, j) => ({ target: t, ...stats(samples[j]), errors: errors[j] })) });
  process.exit(0);
} else {
  console.error("usage: redirect-probe.mjs proxy-listen <host> <port> | hold <host> <port> <maxMs> | bench <n> <host:port>...");
  process.exit(2);
}
