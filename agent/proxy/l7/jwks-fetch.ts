/**
 * Fetches a RequestAuthentication's jwksUri through the mesh: the URI must name a Service of this
 * cluster (the translator refuses anything else); one ready endpoint is asked over a tunnel
 * opened on behalf of the workload the keys are for (HBONE to another node, checked dial on this
 * one), so the key server's own policy applies. Never an address outside the cluster.
 */
import { request } from "node:http";
import type { JSONWebKeySet } from "jose";
import type { Workload } from "../../../controller/api/model.js";
import type { ProxyContext } from "../context.js";
import { socketLike } from "./clients.js";
import { openTunnel, targetOf } from "./tunnel.js";

const FETCH_TIMEOUT_MS = 5_000;
const MAX_JWKS_BYTES = 256 * 1024;

/** Fetches the JWKS document at uri, on behalf of `onBehalfOf`. */
export async function fetchJwks(ctx: ProxyContext, onBehalfOf: Workload, uri: string): Promise<JSONWebKeySet> {
  const u = new URL(uri);
  if (u.protocol !== "http:") throw new Error(`${uri}: only http jwksUri is fetched (the mesh encrypts the hop)`);
  const view = ctx.view();
  const host = u.hostname.toLowerCase();
  const service = view.data.services.find((s) => s.hostname === host || `${s.name}.${s.namespace}.svc` === host);
  if (!service) throw new Error(`${uri}: ${host} is not a service of this mesh`);
  const port = Number(u.port || 80);
  const sp = service.ports.find((p) => p.port === port);
  if (!sp) throw new Error(`${uri}: service ${service.key} has no port ${port}`);
  const ready = service.endpoints.filter((e) => e.ready);
  const ep = ready[Math.floor(Math.random() * ready.length)];
  if (!ep) throw new Error(`${uri}: service ${service.key} has no ready endpoint`);
  const tunnel = await openTunnel(ctx, onBehalfOf, onBehalfOf.addresses[0] ?? "", targetOf(view, ep, sp.targetPort), FETCH_TIMEOUT_MS);
  return new Promise<JSONWebKeySet>((resolve, reject) => {
    const req = request({
      createConnection: () => socketLike(tunnel),
      method: "GET",
      path: `${u.pathname}${u.search}`,
      headers: { host: u.host, accept: "application/json", connection: "close" },
      timeout: FETCH_TIMEOUT_MS,
    });
    req.on("timeout", () => req.destroy(new Error(`${uri}: no answer in ${FETCH_TIMEOUT_MS} ms`)));
    req.on("error", (e) => {
      tunnel.destroy();
      reject(e);
    });
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (c: Buffer) => {
        size += c.length;
        if (size > MAX_JWKS_BYTES) req.destroy(new Error(`${uri}: JWKS larger than ${MAX_JWKS_BYTES} bytes`));
        else chunks.push(c);
      });
      res.on("end", () => {
        tunnel.destroy();
        if (res.statusCode !== 200) return reject(new Error(`${uri}: HTTP ${res.statusCode}`));
        try {
          const doc = JSON.parse(Buffer.concat(chunks).toString("utf8")) as JSONWebKeySet;
          if (!Array.isArray(doc.keys)) throw new Error("no keys array");
          resolve(doc);
        } catch (e) {
          reject(new Error(`${uri}: not a JWKS document: ${(e as Error).message}`));
        }
      });
    });
    req.end();
  });
}
