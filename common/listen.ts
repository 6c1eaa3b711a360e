/** Listen and dial addresses as flags write them: "host:port", "[v6]:port", ":port". */
import { isIP } from "node:net";
import { ConfigError } from "./errors.js";

/** Parses "host:port" / "[v6]:port" / ":port" (an empty host is 0.0.0.0); errors name the flag. */
export function parseListen(text: string, flag = "--listen", example = "10.250.0.1:15012"): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text);
  const host = m ? (m[1] ?? m[2] ?? "") || "0.0.0.0" : "";
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || port > 65535 || (host !== "localhost" && isIP(host) === 0))
    throw new ConfigError(`${flag} '${text}': expected <ip>:<port>, e.g. ${example}`);
  return { host, port };
}
