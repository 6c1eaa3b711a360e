/**
 * The agent's delta-xDS client: one bidirectional stream to the controller, every resource type
 * subscribed with a wildcard and the versions already held (so a reconnect resends only what
 * changed and removes what went away: no duplicates, no losses). Each response is decoded and
 * validated here, outside the state; the valid resources go to the state updater, the invalid
 * ones are NACKed by name with the reason and the previous version stays in use. While the
 * controller is away the agent keeps serving its last state and reconnects with jittered backoff.
 */
import { type Client, type ClientDuplexStream, type ServiceError, status } from "@grpc/grpc-js";
import { Backoff } from "../../common/backoff.js";
import { errorMessage } from "../../common/errors.js";
import type { Logger } from "../../common/log.js";
import { SERVICES, serviceDefinition } from "../../controller/api/proto.js";
import { decodeResource, kindOfTypeUrl, RESOURCE_KINDS, type ResourceKind, typeUrlOf } from "../../controller/api/resources.js";
import type { WireDeltaRequest, WireDeltaResponse, WireResourceError } from "../../controller/api/wire-types.js";
import type { StateUpdater, StoredResource } from "../state/updater.js";
import { createWatch, type ReadonlyWatch } from "../state/watch.js";
import { authMetadata, type ControllerEndpoint, controllerClient } from "./channel.js";

/** gRPC codes by which the controller refuses an agent (as opposed to being unreachable). */
const REFUSALS: ReadonlySet<number> = new Set([status.UNAUTHENTICATED, status.PERMISSION_DENIED]);
/** Least wait after a refusal: only the operator can fix it, so do not hammer the controller. */
const REFUSED_RETRY_MS = 30_000;

/** Connection state, for status and readiness. */
export interface XdsConnection {
  state: "connecting" | "connected" | "disconnected" | "stopped";
  since: string;
  lastError?: string;
}

/** Options of the client. */
export interface XdsClientOptions {
  endpoint: ControllerEndpoint;
  node: string;
  agentVersion: string;
  updater: StateUpdater;
  log: Logger;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
}

/** A NACK the agent sent. */
export interface SentNack {
  type: ResourceKind;
  at: string;
  errors: WireResourceError[];
}

/** Keeps the state updater in line with the controller. */
export class XdsClient {
  private readonly connectionWatch = createWatch<XdsConnection>({ state: "disconnected", since: new Date().toISOString() });
  /** The stream's state, for readiness and status (read-only; this client writes it). */
  readonly connection: ReadonlyWatch<XdsConnection> = this.connectionWatch.watch;
  private client: Client | undefined;
  private call: ClientDuplexStream<WireDeltaRequest, WireDeltaResponse> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  private readonly backoff: Backoff;
  private answered = new Set<ResourceKind>();
  private readonly def = serviceDefinition(SERVICES.discovery).DeltaStream as NonNullable<ReturnType<typeof serviceDefinition>[string]>;
  /** Streams opened since start. */
  connects = 0;
  readonly nacks: SentNack[] = [];
  lastResponseAt: string | undefined;

  constructor(private readonly opts: XdsClientOptions) {
    this.backoff = new Backoff(opts.backoffInitialMs ?? 250, opts.backoffMaxMs ?? 10_000);
  }

  /** Starts connecting (and reconnecting) until stopped. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  /** Closes the stream for good. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.teardown();
    this.setState({ state: "stopped" });
  }

  private setState(s: Omit<XdsConnection, "since">): void {
    this.connectionWatch.set({ ...s, since: new Date().toISOString() });
  }

  private teardown(): void {
    const call = this.call;
    this.call = undefined;
    call?.cancel();
    this.client?.close();
    this.client = undefined;
  }

  private connect(): void {
    if (this.stopped) return;
    this.answered = new Set();
    this.setState({ state: "connecting" });
    let call: ClientDuplexStream<WireDeltaRequest, WireDeltaResponse>;
    try {
      const md = authMetadata(this.opts.endpoint);
      this.client = controllerClient(this.opts.endpoint);
      call = this.client.makeBidiStreamRequest(
        this.def.path,
        this.def.requestSerialize as (v: WireDeltaRequest) => Buffer,
        this.def.responseDeserialize as (b: Buffer) => WireDeltaResponse,
        md,
      );
    } catch (e) {
      this.retry(errorMessage(e));
      return;
    }
    this.call = call;
    this.connects++;
    call.on("data", (res: WireDeltaResponse) => {
      if (call === this.call) this.onResponse(call, res);
    });
    call.on("error", (e: ServiceError) => {
      if (call === this.call) this.retry(e.details || e.message, REFUSALS.has(e.code));
    });
    call.on("end", () => {
      if (call === this.call) this.retry("the controller closed the stream");
    });
    RESOURCE_KINDS.forEach((kind, i) => {
      call.write({
        node: i === 0 ? { name: this.opts.node, agentVersion: this.opts.agentVersion } : null,
        typeUrl: typeUrlOf(kind),
        subscribe: ["*"],
        unsubscribe: [],
        initialResourceVersions: this.opts.updater.versions(kind),
        responseNonce: "",
        errorDetail: null,
      });
    });
  }

  /**
   * Reconnects after a delay. A refusal (the controller answered and said no: bad credential, node
   * not known) is not an outage: it is logged as what it is, at error, and retried slowly, since
   * only a change on the operator's side (RBAC, token, the node's pod) can fix it.
   */
  private retry(why: string, refused = false): void {
    this.teardown();
    if (this.stopped) return;
    const delay = refused ? Math.max(this.backoff.next(), REFUSED_RETRY_MS) : this.backoff.next();
    const was = this.connection.get().state;
    this.setState({ state: "disconnected", lastError: refused ? `refused: ${why}` : why });
    if (refused) {
      this.opts.log.error(
        { target: this.opts.endpoint.target, retryInMs: delay, attempt: this.backoff.attempts, reason: why },
        `the controller refused this agent (${why}); serving the last state and asking again in ${Math.round(delay / 1000)} s`,
      );
    } else {
      const log = was === "connected" ? this.opts.log.warn.bind(this.opts.log) : this.opts.log.info.bind(this.opts.log);
      log(
        { target: this.opts.endpoint.target, retryInMs: delay, attempt: this.backoff.attempts },
        `controller unavailable (${why}); serving the last state and reconnecting`,
      );
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.connect();
    }, delay);
  }

  private onResponse(call: ClientDuplexStream<WireDeltaRequest, WireDeltaResponse>, res: WireDeltaResponse): void {
    this.lastResponseAt = new Date().toISOString();
    const kind = kindOfTypeUrl(res.typeUrl);
    const ack = (errors: WireResourceError[], message: string) =>
      call.write({
        node: null,
        typeUrl: res.typeUrl,
        subscribe: [],
        unsubscribe: [],
        initialResourceVersions: {},
        responseNonce: res.nonce,
        errorDetail: errors.length || message ? { message, resources: errors } : null,
      });
    if (!kind) {
      this.opts.log.warn({ typeUrl: res.typeUrl }, "controller sent an unknown resource type; rejected");
      ack([], `unknown resource type ${res.typeUrl}`);
      return;
    }
    const upserts: StoredResource[] = [];
    const errors: WireResourceError[] = [];
    for (const r of res.resources) {
      try {
        upserts.push({ name: r.name, version: r.version, value: decodeResource(kind, r.name, r.body) });
      } catch (e) {
        errors.push({ name: r.name, reason: errorMessage(e) });
      }
    }
    this.opts.updater.apply(kind, res.systemVersionInfo, upserts, res.removedResources);
    if (errors.length) {
      const message = `${errors.length} of ${res.resources.length} ${kind} resources rejected`;
      this.opts.log.warn({ type: kind, version: res.systemVersionInfo, rejected: errors }, `${message}; keeping their previous versions`);
      this.nacks.push({ type: kind, at: new Date().toISOString(), errors });
      if (this.nacks.length > 20) this.nacks.shift();
      ack(errors, message);
    } else {
      ack([], "");
    }
    this.answered.add(kind);
    if (this.answered.size === RESOURCE_KINDS.length && this.connection.get().state !== "connected") {
      this.backoff.reset();
      this.setState({ state: "connected" });
      this.opts.log.info({ target: this.opts.endpoint.target, streams: this.connects }, "connected to the controller and in sync");
    }
  }

  /** Status for the admin API. */
  status(): object {
    return {
      target: this.opts.endpoint.target,
      ...this.connection.get(),
      streamsOpened: this.connects,
      lastResponseAt: this.lastResponseAt,
      recentNacks: this.nacks,
    };
  }
}
