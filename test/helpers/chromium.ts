/**
 * Headless Chromium (Debian's `chromium`) driven over the DevTools protocol through
 * --remote-debugging-pipe (fd 3 in, fd 4 out, NUL-delimited JSON): no WebSocket client, no npm
 * package. Chromium runs in a network namespace of the test's own with only loopback up, so the
 * browser can reach nothing but the page under test (and its background services nothing at all).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";

/** Where Debian installs it. */
export const CHROMIUM = "/usr/bin/chromium";

/** Whether the browser is installed (the test's set-up installs it: WEFT_EXTRA_APT=chromium). */
export function haveChromium(): boolean {
  return existsSync(CHROMIUM);
}

/** A network namespace with loopback only; removed by `remove()`. */
export class LoopbackNetns {
  constructor(readonly name: string) {
    execFileSync("ip", ["netns", "add", name]);
    execFileSync("ip", ["-n", name, "link", "set", "lo", "up"]);
  }

  /** argv that runs a command inside it. */
  wrap(argv: readonly string[]): string[] {
    return ["ip", "netns", "exec", this.name, ...argv];
  }

  /** Deletes the namespace (idempotent). */
  remove(): void {
    try {
      execFileSync("ip", ["netns", "del", this.name], { stdio: "ignore" });
    } catch {}
  }
}

interface Pending {
  resolve: (v: Record<string, unknown>) => void;
  reject: (e: Error) => void;
}

/** One browser and one page (a flat session on a new target). */
export class Browser {
  private next = 1;
  private readonly pending = new Map<number, Pending>();
  private buffer = "";
  private session = "";
  private readonly profile = mkdtempSync(join(tmpdir(), "weft-chromium-"));
  private readonly proc: ChildProcess;
  private readonly input: Writable;

  constructor(netns: LoopbackNetns) {
    const argv = netns.wrap([
      CHROMIUM,
      "--headless=new",
      "--no-sandbox",
      "--disable-gpu",
      "--remote-debugging-pipe",
      `--user-data-dir=${this.profile}`,
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--window-size=1400,900",
      "about:blank",
    ]);
    this.proc = spawn(argv[0] as string, argv.slice(1), { stdio: ["ignore", "ignore", "ignore", "pipe", "pipe"] });
    this.input = this.proc.stdio[3] as Writable;
    const output = this.proc.stdio[4] as Readable;
    output.setEncoding("utf8");
    output.on("data", (chunk: string) => this.onData(chunk));
    this.proc.on("exit", () => {
      for (const p of this.pending.values()) p.reject(new Error("chromium exited"));
      this.pending.clear();
    });
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    for (let i = this.buffer.indexOf("\0"); i >= 0; i = this.buffer.indexOf("\0")) {
      const msg = JSON.parse(this.buffer.slice(0, i)) as { id?: number; result?: Record<string, unknown>; error?: { message: string } };
      this.buffer = this.buffer.slice(i + 1);
      const p = msg.id !== undefined ? this.pending.get(msg.id) : undefined;
      if (!p) continue;
      this.pending.delete(msg.id as number);
      if (msg.error) p.reject(new Error(msg.error.message));
      else p.resolve(msg.result ?? {});
    }
  }

  /** Sends one DevTools command (to the page's session unless `browser`). */
  send(method: string, params: Record<string, unknown> = {}, browser = false): Promise<Record<string, unknown>> {
    const id = this.next++;
    const msg = { id, method, params, ...(browser || !this.session ? {} : { sessionId: this.session }) };
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.input.write(`${JSON.stringify(msg)}\0`);
    });
  }

  /** Opens a page at `url` and attaches to it. */
  async open(url: string): Promise<void> {
    const { targetId } = (await this.send("Target.createTarget", { url: "about:blank" }, true)) as { targetId: string };
    const { sessionId } = (await this.send("Target.attachToTarget", { targetId, flatten: true }, true)) as { sessionId: string };
    this.session = sessionId;
    await this.send("Page.enable");
    await this.send("Runtime.enable");
    await this.send("Page.navigate", { url });
  }

  /** Evaluates an expression in the page (promises awaited); returns its JSON value. */
  async evaluate<T>(expression: string): Promise<T> {
    const r = (await this.send("Runtime.evaluate", { expression, awaitPromise: true, returnByValue: true })) as {
      result: { value?: T };
      exceptionDetails?: { text: string; exception?: { description?: string } };
    };
    if (r.exceptionDetails) throw new Error(`page: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
    return r.result.value as T;
  }

  /** A real mouse click at page coordinates. */
  async click(x: number, y: number): Promise<void> {
    await this.send("Input.dispatchMouseEvent", { type: "mouseMoved", x, y });
    await this.send("Input.dispatchMouseEvent", { type: "mousePressed", x, y, button: "left", clickCount: 1 });
    await this.send("Input.dispatchMouseEvent", { type: "mouseReleased", x, y, button: "left", clickCount: 1 });
  }

  /** PNG screenshot of the viewport. */
  async screenshot(): Promise<Buffer> {
    const { data } = (await this.send("Page.captureScreenshot", { format: "png" })) as { data: string };
    return Buffer.from(data, "base64");
  }

  /** Closes the browser and removes its profile. */
  async close(): Promise<void> {
    if (this.proc.exitCode === null) {
      const exited = new Promise((r) => this.proc.once("exit", r));
      this.send("Browser.close", {}, true).catch(() => undefined);
      const timer = setTimeout(() => this.proc.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(this.profile, { recursive: true, force: true });
  }
}
