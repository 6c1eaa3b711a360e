/** One outgoing call of a Bookinfo app, reported whatever happens: the page shows what each call did. */
import { get } from "node:http";

/** The outcome of a call: HTTP status (0 when no response came), duration, parsed body or error. */
export interface CallResult {
  status: number;
  ms: number;
  body?: unknown;
  error?: string;
}

/** Address of a service from the Kubernetes-style environment. */
export function serviceAddr(name: string): { host: string; port: number } {
  const key = name.toUpperCase().replace(/-/g, "_");
  const host = process.env[`${key}_SERVICE_HOST`];
  const port = Number(process.env[`${key}_SERVICE_PORT`] ?? 9080);
  if (!host) throw new Error(`${key}_SERVICE_HOST is not set: cannot find service ${name}`);
  return { host, port };
}

/**
 * GETs a JSON document from a service with a deadline. Never rejects: a timeout, a refused
 * connection or a non-JSON body come back as a result with `error`, an HTTP error status with it.
 */
export function call(name: string, path: string, headers: Record<string, string>, timeoutMs: number): Promise<CallResult> {
  const started = process.hrtime.bigint();
  const ms = () => Math.round(Number(process.hrtime.bigint() - started) / 1e5) / 10;
  return new Promise((resolve) => {
    let settled = false;
    const done = (r: Omit<CallResult, "ms">) => {
      if (settled) return;
      settled = true;
      resolve({ ...r, ms: ms() });
    };
    let addr: { host: string; port: number };
    try {
      addr = serviceAddr(name);
    } catch (e) {
      done({ status: 0, error: (e as Error).message });
      return;
    }
    const req = get({ ...addr, path, headers, timeout: timeoutMs, agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        text += c;
      });
      res.on("error", (e) => done({ status: res.statusCode ?? 0, error: e.message }));
      res.on("end", () => {
        const status = res.statusCode ?? 0;
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          body = undefined;
        }
        if (status >= 400)
          done({ status, body, error: `${name}${path}: HTTP ${status}${body === undefined ? ` ${text.slice(0, 120)}` : ""}` });
        else if (body === undefined) done({ status, error: `${name}${path}: not JSON` });
        else done({ status, body });
      });
    });
    req.on("timeout", () => req.destroy(new Error(`${name}${path}: timed out after ${timeoutMs} ms`)));
    req.on("error", (e) => done({ status: 0, error: e.message }));
  });
}
