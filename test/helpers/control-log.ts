/** A pino logger whose lines tests can read. */
import { createLogger, type Logger } from "../../common/log.js";

/** One parsed log line. */
export interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

/** A logger plus the lines it wrote. */
export interface CapturedLog {
  log: Logger;
  lines: LogLine[];
  /** Lines whose message matches. */
  find(re: RegExp): LogLine[];
}

/** A debug-level logger that keeps every line (and echoes to stderr when WEFT_TEST_LOG is set). */
export function captureLogger(name = "test"): CapturedLog {
  const lines: LogLine[] = [];
  const log = createLogger({
    name,
    level: "debug",
    destination: {
      write(s: string) {
        if (process.env.WEFT_TEST_LOG) process.stderr.write(s);
        for (const l of s.split("\n").filter(Boolean)) lines.push(JSON.parse(l) as LogLine);
      },
    },
  });
  return { log, lines, find: (re) => lines.filter((l) => re.test(l.msg)) };
}
