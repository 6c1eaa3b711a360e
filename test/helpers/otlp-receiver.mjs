// A minimal OTLP/HTTP trace receiver for the tracing tests (plain Node, no build step), run inside
// the cluster's fabric netns where every node's agent can reach it:
//   otlp-receiver.mjs --listen <ip>:<port> --out <file>
// Accepts POST /v1/traces as application/x-protobuf (what the agents' exporter sends) or
// application/json, and appends one JSON line per span to --out:
//   {traceId, spanId, parentSpanId, name, kind, startNs, node, attributes}
// where node is the exporting agent's resource attribute weft.node and kind is SERVER/CLIENT/...
// The out file is created (empty) once the server listens, so a test can wait for it.
import { appendFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { parseArgs } from "node:util";
import { gunzipSync } from "node:zlib";
import protobuf from "protobufjs";

const { values: o } = parseArgs({ options: { listen: { type: "string" }, out: { type: "string" } } });
const m = /^([\d.]+):(\d{1,5})$/.exec(o.listen ?? "");
if (!m || !o.out) {
  console.error("otlp-receiver: usage: --listen <ip>:<port> --out <file>");
  process.exit(2);
}

// The parts of opentelemetry/proto (trace/v1, common/v1, resource/v1, collector/trace/v1) the
// tests read; field numbers as the OTLP specification assigns them. Unknown fields are skipped.
const root = protobuf.parse(`
syntax = "proto3";
package otlp;
message AnyValue {
  oneof value {
    string string_value = 1;
    bool bool_value = 2;
    int64 int_value = 3;
    double double_value = 4;
  }
}
message KeyValue { string key = 1; AnyValue value = 2; }
message Resource { repeated KeyValue attributes = 1; }
message Span {
  bytes trace_id = 1;
  bytes span_id = 2;
  bytes parent_span_id = 4;
  string name = 5;
  int32 kind = 6;
  fixed64 start_time_unix_nano = 7;
  repeated KeyValue attributes = 9;
}
message ScopeSpans { repeated Span spans = 2; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
`).root;
const Request = root.lookupType("otlp.ExportTraceServiceRequest");
const KINDS = ["UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"];

const hex = (b) => (typeof b === "string" ? b.toLowerCase() : Buffer.from(b ?? []).toString("hex"));

function value(v) {
  if (!v) return undefined;
  for (const k of ["stringValue", "boolValue", "intValue", "doubleValue"]) if (v[k] !== undefined && v[k] !== null) return v[k];
  return undefined;
}

function attrs(list) {
  return Object.fromEntries((list ?? []).map((kv) => [kv.key, value(kv.value)]));
}

/** Spans of one export request (decoded protobuf, or protobuf-JSON with hex ids), as JSON lines. */
function lines(req) {
  const out = [];
  for (const rs of req.resourceSpans ?? []) {
    const node = attrs(rs.resource?.attributes)["weft.node"];
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        out.push(
          JSON.stringify({
            traceId: hex(s.traceId),
            spanId: hex(s.spanId),
            parentSpanId: hex(s.parentSpanId),
            name: s.name,
            kind: typeof s.kind === "number" ? KINDS[s.kind] : String(s.kind).replace(/^SPAN_KIND_/, ""),
            startNs: String(s.startTimeUnixNano ?? "0"),
            node,
            attributes: attrs(s.attributes),
          }),
        );
      }
    }
  }
  return out;
}

const server = createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    if (req.method !== "POST" || req.url !== "/v1/traces") {
      res.writeHead(404).end();
      return;
    }
    try {
      let body = Buffer.concat(chunks);
      if (req.headers["content-encoding"] === "gzip") body = gunzipSync(body);
      const json = (req.headers["content-type"] ?? "").startsWith("application/json");
      const decoded = json ? JSON.parse(body.toString("utf8")) : Request.toObject(Request.decode(body), { longs: String, enums: Number });
      const ls = lines(decoded);
      if (ls.length) appendFileSync(o.out, `${ls.join("\n")}\n`);
      // An empty ExportTraceServiceResponse: zero bytes in protobuf, {} in JSON.
      res.writeHead(200, { "content-type": json ? "application/json" : "application/x-protobuf" }).end(json ? "{}" : undefined);
    } catch (e) {
      console.error(`otlp-receiver: bad export request: ${e instanceof Error ? e.message : e}`);
      res.writeHead(400).end();
    }
  });
});
server.listen(Number(m[2]), m[1], () => {
  writeFileSync(o.out, "", { flag: "a" });
  console.log(`listening ${o.listen}`);
});
