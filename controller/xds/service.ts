/**
 * The AggregatedDiscovery service: authenticates each agent stream, keeps the current encoded
 * mesh state, and pushes every change to every stream as deltas.
 */
import { type handleBidiStreamingCall, type ServerDuplexStream, status } from "@grpc/grpc-js";
import { errorMessage } from "../../common/errors.js";
import type { Logger } from "../../common/log.js";
import type { ResourceKind } from "../api/resources.js";
import type { TrustBundle, WireDeltaRequest, WireDeltaResponse } from "../api/wire-types.js";
import { AuthError, bearer, type NodeAuthenticator } from "../ca/node-auth.js";
import { grpcError } from "../ca/service.js";
import type { MeshModel } from "../translate/types.js";
import { AgentStream, type NackRecord, type StreamObserver } from "./agent-stream.js";
import { ControllerMetrics, DEFAULT_XDS_LIMITS, RefusalLog, type XdsLimits } from "./limits.js";
import { ResourceSet } from "./resource-set.js";

/** Push statistics. */
export interface PushStats {
  pushes: number;
  lastPushAt?: string;
  lastBuildMs?: number;
  /** Diffing and sending to every stream, after the build. */
  lastSendMs?: number;
  acks: number;
  nacks: number;
}

/** Serves delta xDS to agents. */
export class XdsService implements StreamObserver {
  private current: ResourceSet | undefined;
  private readonly streams = new Set<AgentStream>();
  private readonly epoch = Date.now().toString(36);
  private counter = 0;
  readonly stats: PushStats = { pushes: 0, acks: 0, nacks: 0 };
  private readonly ackListeners = new Set<(s: AgentStream, kind: ResourceKind) => void>();
  private readonly nackListeners = new Set<(s: AgentStream, n: NackRecord) => void>();
  private readonly limits: XdsLimits;
  private readonly refusals: RefusalLog;
  /** Streams whose credential is still being checked. */
  private pendingAuth = 0;

  constructor(
    private readonly auth: NodeAuthenticator,
    private readonly log: Logger,
    limits: Partial<XdsLimits> = {},
    readonly metrics = new ControllerMetrics(),
  ) {
    this.limits = { ...DEFAULT_XDS_LIMITS, ...limits };
    this.refusals = new RefusalLog(log, this.limits.refusalLogsPerMinute);
  }

  /** The current encoded state (undefined before the first update). */
  get resources(): ResourceSet | undefined {
    return this.current;
  }

  /** Connected agents. */
  get agents(): readonly AgentStream[] {
    return [...this.streams];
  }

  /** Publishes a new mesh state and pushes the differences to every agent. */
  update(model: MeshModel, bundle: TrustBundle): ResourceSet {
    const start = performance.now();
    this.counter++;
    const prev = this.current;
    this.current = new ResourceSet(model, bundle, `${this.epoch}-${this.counter}`, prev);
    this.stats.lastBuildMs = Math.round((performance.now() - start) * 10) / 10;
    this.stats.pushes++;
    this.stats.lastPushAt = new Date().toISOString();
    const sendStart = performance.now();
    for (const s of this.streams) s.update(this.current, prev);
    this.stats.lastSendMs = Math.round((performance.now() - sendStart) * 10) / 10;
    return this.current;
  }

  /** The service's method handlers. */
  handlers(): { DeltaStream: handleBidiStreamingCall<WireDeltaRequest, WireDeltaResponse> } {
    return { DeltaStream: (call) => this.open(call) };
  }

  /** Called on every ACK (tests and benchmarks measure propagation with it). */
  onAckListener(fn: (s: AgentStream, kind: ResourceKind) => void): () => void {
    this.ackListeners.add(fn);
    return () => this.ackListeners.delete(fn);
  }

  /** Called on every NACK. */
  onNackListener(fn: (s: AgentStream, n: NackRecord) => void): () => void {
    this.nackListeners.add(fn);
    return () => this.nackListeners.delete(fn);
  }

  /** StreamObserver: an ACK arrived. */
  onAck(s: AgentStream, kind: ResourceKind): void {
    this.stats.acks++;
    for (const l of this.ackListeners) l(s, kind);
  }

  /** StreamObserver: a NACK arrived. */
  onNack(s: AgentStream, n: NackRecord): void {
    this.stats.nacks++;
    for (const l of this.nackListeners) l(s, n);
  }

  private open(call: ServerDuplexStream<WireDeltaRequest, WireDeltaResponse>): void {
    const peer = call.getPeer();
    const queued: WireDeltaRequest[] = [];
    let stream: AgentStream | undefined;
    let failed = false;
    const fail = (code: status, message: string, limit?: string) => {
      if (failed) return;
      failed = true;
      if (limit) this.metrics.limitHit(limit);
      this.metrics.refusedCall(status[code] ?? String(code));
      this.refusals.refused({ peer, node: stream?.node, code: status[code] }, `agent stream refused: ${message}`);
      call.emit("error", grpcError(code, message));
    };
    const handle = (req: WireDeltaRequest) => {
      if (!stream) return;
      if (req.node?.name && req.node.name !== stream.node) {
        fail(status.PERMISSION_DENIED, `credential belongs to node ${stream.node}, but the agent says it is ${req.node.name}`);
        return;
      }
      try {
        stream.onRequest(req);
      } catch (e) {
        this.log.error({ node: stream.node, err: errorMessage(e) }, "failed to handle an agent request");
      }
    };
    call.on("data", (req: WireDeltaRequest) => {
      if (failed) return;
      if (stream) handle(req);
      else if (queued.length < this.limits.maxPreAuthMessages) queued.push(req);
      else
        fail(
          status.RESOURCE_EXHAUSTED,
          `more than ${this.limits.maxPreAuthMessages} messages before the credential was checked`,
          "pre_auth_messages",
        );
    });
    const close = () => {
      if (!stream) return;
      stream.close();
      if (this.streams.delete(stream)) this.log.info({ node: stream.node, peer }, "agent disconnected");
    };
    call.on("end", () => {
      close();
      call.end();
    });
    call.on("error", close);
    call.on("cancelled", close);
    let credential: string;
    try {
      credential = bearer(call.metadata);
    } catch (e) {
      fail(e instanceof AuthError ? e.grpcStatus : status.UNAUTHENTICATED, errorMessage(e));
      return;
    }
    if (this.pendingAuth >= this.limits.maxPendingAuth) {
      fail(status.RESOURCE_EXHAUSTED, "too many agent streams are being authenticated; retry later", "pending_auth");
      return;
    }
    this.pendingAuth++;
    let authDone = false;
    const authSettled = () => {
      if (!authDone) this.pendingAuth--;
      authDone = true;
    };
    this.auth.authenticate(credential).then(
      (who) => {
        authSettled();
        if (failed || call.cancelled || call.destroyed) return;
        let open = 0;
        for (const s of this.streams) if (s.node === who.node) open++;
        if (open >= this.limits.maxStreamsPerNode) {
          fail(
            status.RESOURCE_EXHAUSTED,
            `node ${who.node} already has ${open} streams open (limit ${this.limits.maxStreamsPerNode})`,
            "streams_per_node",
          );
          return;
        }
        stream = new AgentStream(who.node, peer, call, () => this.current, this.log, this);
        this.streams.add(stream);
        this.log.info({ node: who.node, peer, via: who.via }, "agent connected");
        for (const r of queued.splice(0)) handle(r);
      },
      (e: unknown) => {
        authSettled();
        if (e instanceof AuthError) fail(e.grpcStatus, e.message);
        else fail(status.UNAVAILABLE, `cannot authenticate right now: ${errorMessage(e)}`);
      },
    );
  }

  /** Per-agent status. */
  status(): { systemVersion: string | undefined; stats: PushStats; agents: ReturnType<AgentStream["status"]>[] } {
    return { systemVersion: this.current?.systemVersion, stats: this.stats, agents: [...this.streams].map((s) => s.status()) };
  }
}
