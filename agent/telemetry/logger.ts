/** pino loggers: one for the agent's own events, one access log line per connection. */
import pino, { type Logger } from "pino";

/** Log levels operators may set at run time. */
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;

/** The agent's root logger (JSON to stdout, or to a given destination). */
export function createLogger(opts: { level?: string; name?: string; destination?: pino.DestinationStream } = {}): Logger {
  return pino(
    {
      name: opts.name ?? "weft",
      level: opts.level ?? process.env.WEFT_LOG_LEVEL ?? "info",
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    opts.destination,
  );
}
