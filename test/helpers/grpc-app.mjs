// A gRPC server and client run inside pods by the L7 tests (plain Node, no build step), over h2c
// (gRPC without TLS: the mesh supplies mTLS). The service is defined at run time with protobufjs,
// no code generation:
//   service weft.demo.Echo { rpc Who (WhoRequest{int32 status; string note}) returns (WhoReply{string version; string pod}) }
//   grpc-app.mjs server --port <p> --version <v> [--name <pod>]
//       answers Who with its version; a request with status != 0 gets that grpc-status instead
//       (details "version <v>", trailer x-version: <v>). Prints "listening <port>" when ready.
//   grpc-app.mjs client --target <host:port> [-c 1] [-n 1] [--metadata name:value ...]
//                       [--status <code>] [--deadline-ms 5000] [--max-ms 120000] [--connection-per-caller]
//       c concurrent callers over one channel (one HTTP/2 connection; with --connection-per-caller
//       each caller has its own channel and connection), n calls each; prints one
//       JSON line {calls, versions: {v1: n}, statuses: {"0": n, "14": n}, errors: {details: n}, ms}.

import { hostname } from "node:os";
import { parseArgs } from "node:util";
import grpc from "@grpc/grpc-js";
import protobuf from "protobufjs";

const PROTO = `
syntax = "proto3";
package weft.demo;
message WhoRequest { int32 status = 1; string note = 2; }
message WhoReply { string version = 1; string pod = 2; }
service Echo { rpc Who (WhoRequest) returns (WhoReply); }
`;
const root = protobuf.parse(PROTO).root;
const WhoRequest = root.lookupType("weft.demo.WhoRequest");
const WhoReply = root.lookupType("weft.demo.WhoReply");
const codec = (T) => ({
  serialize: (obj) => Buffer.from(T.encode(T.fromObject(obj)).finish()),
  deserialize: (buf) => T.toObject(T.decode(buf), { defaults: true }),
});
const req = codec(WhoRequest);
const rep = codec(WhoReply);
const SERVICE = {
  Who: {
    path: "/weft.demo.Echo/Who",
    requestStream: false,
    responseStream: false,
    requestSerialize: req.serialize,
    requestDeserialize: req.deserialize,
    responseSerialize: rep.serialize,
    responseDeserialize: rep.deserialize,
  },
};

const [mode, ...rest] = process.argv.slice(2);
const { values: o } = parseArgs({
  args: rest,
  options: {
    port: { type: "string" },
    version: { type: "string", default: "v1" },
    name: { type: "string", default: hostname() },
    target: { type: "string" },
    c: { type: "string", short: "c", default: "1" },
    n: { type: "string", short: "n", default: "1" },
    metadata: { type: "string", multiple: true, default: [] },
    status: { type: "string", default: "0" },
    "deadline-ms": { type: "string", default: "5000" },
    "max-ms": { type: "string", default: "120000" },
    "connection-per-caller": { type: "boolean", default: false },
  },
});

function fail(msg) {
  console.error(`grpc-app: ${msg}`);
  process.exit(2);
}
function int(flag, text, min, max) {
  const v = Number(text);
  if (!Number.isInteger(v) || v < min || v > max) fail(`--${flag} '${text}': expected an integer from ${min} to ${max}`);
  return v;
}

if (mode === "server") {
  const port = int("port", o.port, 1, 65535);
  const server = new grpc.Server();
  server.addService(SERVICE, {
    Who: (call, callback) => {
      const status = call.request.status;
      if (status !== 0) {
        const trailer = new grpc.Metadata();
        trailer.set("x-version", o.version);
        callback({ code: status, details: `version ${o.version}`, metadata: trailer });
        return;
      }
      callback(null, { version: o.version, pod: o.name });
    },
  });
  server.bindAsync(`0.0.0.0:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
    if (err) fail(`bind ${port}: ${err.message}`);
    console.log(`listening ${port}`);
  });
  process.on("SIGTERM", () => server.tryShutdown(() => process.exit(0)));
} else if (mode === "client") {
  if (!o.target) fail("--target host:port is required");
  const c = int("c", o.c, 1, 1000);
  const n = int("n", o.n, 1, 1_000_000);
  const status = int("status", o.status, 0, 16);
  const deadlineMs = int("deadline-ms", o["deadline-ms"], 1, 600_000);
  const maxMs = int("max-ms", o["max-ms"], 1, 3_600_000);
  const Client = grpc.makeGenericClientConstructor(SERVICE, "Echo");
  const shared = new Client(o.target, grpc.credentials.createInsecure());
  // A local subchannel pool gives a channel its own connection instead of sharing the process's.
  const own = () => new Client(o.target, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
  const md = new grpc.Metadata();
  for (const m of o.metadata) {
    const i = m.indexOf(":");
    if (i <= 0) fail(`--metadata '${m}': expected name:value`);
    md.set(m.slice(0, i).trim().toLowerCase(), m.slice(i + 1).trim());
  }
  const started = Date.now();
  const versions = {};
  const statuses = {};
  const errors = {};
  let calls = 0;
  const bump = (map, k) => {
    map[k] = (map[k] ?? 0) + 1;
  };
  const one = (client) =>
    new Promise((resolve) => {
      client.Who({ status, note: "" }, md, { deadline: Date.now() + deadlineMs }, (err, reply) => {
        if (err) {
          bump(statuses, err.code);
          const v = err.metadata?.get("x-version")[0];
          if (v) bump(versions, String(v));
          else bump(errors, err.details || String(err.code));
        } else {
          bump(statuses, 0);
          bump(versions, reply.version);
        }
        resolve();
      });
    });
  const worker = async () => {
    const client = o["connection-per-caller"] ? own() : shared;
    for (let i = 0; i < n && Date.now() - started < maxMs; i++) {
      calls++;
      await one(client);
    }
    if (client !== shared) client.close();
  };
  await Promise.all(Array.from({ length: c }, worker));
  shared.close();
  console.log(JSON.stringify({ calls, versions, statuses, errors, ms: Date.now() - started }));
} else {
  console.error(
    "usage: grpc-app.mjs server --port <p> --version <v> | client --target <host:port> [-c n] [-n n] [--metadata k:v] [--status code]",
  );
  process.exit(2);
}
