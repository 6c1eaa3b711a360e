/**
 * An in-process control plane on loopback for tests: a real controller (file store in a temp
 * dir, real TLS gRPC server, real CA) and real agents connecting to it.
 */
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { AgentApp } from "../../agent/app.js";
import { type AgentConfig, type AgentFlags, agentConfig } from "../../agent/config.js";
import type { KubeObject } from "../../controller/api/kube-types.js";
import { type ControllerFlags, controllerConfig } from "../../controller/config.js";
import { Controller } from "../../controller/controller.js";
import { type CapturedLog, captureLogger } from "./control-log.js";

/** File name an object gets in the store. */
export function storeName(o: KubeObject): string {
  return `${o.kind.toLowerCase()}.${o.metadata.namespace ? `${o.metadata.namespace}.` : ""}${o.metadata.name}.yaml`;
}

/** A controller on 127.0.0.1 with its file store, plus helpers to change the store and add agents. */
export class ControlFixture {
  readonly agents: AgentApp[] = [];
  private constructor(
    readonly dir: string,
    readonly storeDir: string,
    readonly stateDir: string,
    public controller: Controller,
    public controllerLog: CapturedLog,
    private readonly flags: ControllerFlags,
  ) {}

  /** Starts a controller over these objects. */
  static async start(objects: readonly KubeObject[], flags: Partial<ControllerFlags> = {}): Promise<ControlFixture> {
    const dir = mkdtempSync(join(tmpdir(), "weft-cp-"));
    const storeDir = join(dir, "store");
    const stateDir = join(dir, "state");
    mkdirSync(storeDir);
    for (const o of objects) writeFileSync(join(storeDir, storeName(o)), stringify(o));
    const all: ControllerFlags = {
      store: storeDir,
      listen: "127.0.0.1:0",
      stateDir,
      adminSocket: join(dir, "controller.sock"),
      debounce: "20ms",
      ...flags,
    };
    const cap = captureLogger("controller");
    const c = new Controller(controllerConfig(all), cap.log);
    await c.start();
    return new ControlFixture(dir, storeDir, stateDir, c, cap, all);
  }

  /** The controller's address. */
  get target(): string {
    return `127.0.0.1:${this.controller.port}`;
  }

  /** Writes (adds or replaces) objects in the store, atomically as the cluster harness does. */
  write(...objs: KubeObject[]): void {
    for (const o of objs) {
      const tmp = join(this.storeDir, `.tmp-${process.pid}-${Math.random()}`);
      writeFileSync(tmp, stringify(o));
      renameSync(tmp, join(this.storeDir, storeName(o)));
    }
  }

  /** Removes objects from the store. */
  remove(...objs: KubeObject[]): void {
    for (const o of objs) rmSync(join(this.storeDir, storeName(o)), { force: true });
  }

  /** Flags for an agent of a node talking to this controller. */
  agentFlags(node: string, extra: Partial<AgentFlags> = {}): AgentFlags {
    return {
      node,
      controller: this.target,
      tokenFile: join(this.stateDir, "tokens", `${node}.token`),
      caFile: join(this.stateDir, "ca", "root-cert.pem"),
      adminAddress: "off",
      adminSocket: join(this.dir, `agent-${node}-${this.agents.length}.sock`),
      reconnectMax: "300ms",
      ...extra,
    };
  }

  /** Starts an agent for a node; resolves once it is in sync. */
  async agent(
    node: string,
    extra: Partial<AgentFlags> = {},
    adjust?: (c: AgentConfig) => void,
  ): Promise<{ app: AgentApp; log: CapturedLog }> {
    const log = captureLogger(`agent-${node}`);
    const config = agentConfig(this.agentFlags(node, extra));
    adjust?.(config);
    const app = new AgentApp(config, log.log);
    this.agents.push(app);
    await app.start();
    await app.updater.state.when((s) => s.synced, 10_000);
    return { app, log };
  }

  /** Kills the controller (no goodbye to agents) — as a crash or SIGKILL would. */
  async killController(): Promise<void> {
    await this.controller.stop();
  }

  /** Starts a new controller on the same port and state dir. */
  async restartController(): Promise<void> {
    const cap = captureLogger("controller");
    const c = new Controller(controllerConfig({ ...this.flags, listen: `127.0.0.1:${this.controller.port}` }), cap.log);
    await c.start();
    this.controller = c;
    this.controllerLog = cap;
  }

  /** Stops everything and removes the temp dir. */
  async stop(): Promise<void> {
    for (const a of this.agents.splice(0)) await a.stop();
    await this.controller.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
