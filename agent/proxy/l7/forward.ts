/**
 * Carries out one routed request, as small layers around the upstream exchange, each there for
 * one reason:
 *   fault      – injected delay/abort, before anything else (Istio applies faults first);
 *   limits     – the cluster's connection-pool limits: overflow is answered 503 UO at once;
 *   retry      – attempts with jittered backoff while the outcome is retriable, the body can be
 *                replayed and the retry budget allows; each retry prefers a host not yet tried;
 *   balance    – per attempt, among endpoints outlier detection has not ejected;
 *   timeouts   – per try and for the whole request (504 UT);
 *   exchange   – the upstream HTTP request through a reused connection (clients.ts).
 * It decides nothing about routing (router.ts did) and writes nothing downstream (the caller
 * streams the response or the local reply it returns).
 */
import { sleep } from "../../../common/sleep.js";
import type { Workload } from "../../../controller/api/model.js";
import type { ResponseFlag } from "../../telemetry/labels.js";
import type { ProxyContext } from "../context.js";
import type { BalancerRegistry } from "./balancer.js";
import type { ReplayableBody } from "./body.js";
import type { CancelSignal } from "./cancel.js";
import type { UpstreamClients } from "./clients.js";
import type { ClientSettings, ExchangeFailure, UpstreamHead, UpstreamResponse } from "./exchange.js";
import { decideFault } from "./fault.js";
import type { LimiterRegistry } from "./limiter.js";
import type { UpstreamOutcome } from "./outcome.js";
import type { OutlierRegistry } from "./outlier.js";
import { backoffMs, retriable } from "./retry.js";
import type { RouteDecision, UpstreamCluster } from "./router.js";
import { targetOf, type UpstreamTarget } from "./tunnel.js";

/** Per-worker L7 state: upstream clients and per-cluster balancing, health and limits. */
export interface L7Deps {
  ctx: ProxyContext;
  clients: UpstreamClients;
  balancers: BalancerRegistry;
  outliers: OutlierRegistry;
  limiters: LimiterRegistry;
}

/** One request as the forwarding layers see it. */
export interface ForwardScope {
  source: Workload;
  sourceIp: string;
  protocol: "http1" | "http2";
  /** Head to send upstream (already rewritten and with request header edits applied). */
  head: UpstreamHead;
  query: string;
  body: ReplayableBody;
  /** Aborts when the downstream client goes away. */
  signal: CancelSignal;
  /** When the request started (ms, for the whole-request timeout). */
  started: number;
}

/** What happened: a response to stream back, or a reply the proxy makes itself. */
export type ForwardResult =
  | {
      kind: "response";
      response: UpstreamResponse;
      target: UpstreamTarget;
      attempts: number;
      flags: ResponseFlag;
      /** Deadline (ms epoch) for the response to complete; Infinity for none. */
      deadline: number;
      /** A consistent-hash cookie the balancer generated, to set on the response. */
      setCookie?: string;
      /** Call once the response has ended or failed: frees the limiter slot and balancer count. */
      done(): void;
      /** Abandons the upstream request (downstream gone, or deadline passed mid-body). */
      abort(): void;
    }
  | { kind: "local"; status: number; flags: ResponseFlag; reason: string; attempts: number; target?: UpstreamTarget; grpcStatus?: number };

type Forward = RouteDecision & { kind: "forward" };

/** Resolves with the promise's value, or "timeout" after ms (Infinity: never). */
function within<T>(p: Promise<T>, ms: number): Promise<T | "timeout"> {
  if (!Number.isFinite(ms)) return p;
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve("timeout"), Math.max(0, ms));
    p.then((v) => {
      clearTimeout(t);
      resolve(v);
    });
  });
}

function outcomeOfFailure(f: ExchangeFailure): UpstreamOutcome {
  if (f.kind === "denied") return { kind: "response", status: f.status };
  return { kind: f.kind };
}

function grpcStatusOf(h: Record<string, unknown>): number | undefined {
  const v = h["grpc-status"];
  return typeof v === "string" && /^\d+$/.test(v) ? Number(v) : undefined;
}

function local(
  status: number,
  flags: ResponseFlag,
  reason: string,
  attempts: number,
  target?: UpstreamTarget,
  grpcStatus?: number,
): ForwardResult {
  return {
    kind: "local",
    status,
    flags,
    reason,
    attempts,
    ...(target ? { target } : {}),
    ...(grpcStatus !== undefined ? { grpcStatus } : {}),
  };
}

// Cluster policies are immutable snapshot objects: their client settings are made once, not per attempt.
const settingsOf = new WeakMap<UpstreamCluster["policy"], ClientSettings>();

/** The upstream client settings a cluster's connectionPool asks for. */
function clientSettings(policy: UpstreamCluster["policy"]): ClientSettings {
  let s = settingsOf.get(policy);
  if (!s) {
    const pool = policy.connectionPool?.http;
    const tcp = policy.connectionPool?.tcp;
    s = {
      ...(pool?.maxRequestsPerConnection !== undefined ? { maxRequestsPerConnection: pool.maxRequestsPerConnection } : {}),
      ...(pool?.idleTimeoutMs !== undefined ? { idleTimeoutMs: pool.idleTimeoutMs } : {}),
      ...(tcp?.connectTimeoutMs !== undefined ? { connectTimeoutMs: tcp.connectTimeoutMs } : {}),
    };
    settingsOf.set(policy, s);
  }
  return s;
}

/** Forwards a request along a routing decision; never throws. */
export async function forward(deps: L7Deps, d: Forward, scope: ForwardScope): Promise<ForwardResult> {
  const fault = decideFault(d.fault);
  let delayed = false;
  if (fault.delayMs !== undefined && fault.delayMs > 0) {
    await sleep(fault.delayMs, scope.signal);
    delayed = true;
  }
  if (fault.abort) {
    return local(fault.abort.status, delayed ? "DI,FI" : "FI", "fault injected", 0, undefined, fault.abort.grpcStatus);
  }
  const deadline = d.timeoutMs > 0 ? scope.started + d.timeoutMs : Number.POSITIVE_INFINITY;
  const cluster = d.cluster;
  const limiter = deps.limiters.forCluster(cluster.key, cluster.policy.connectionPool, scope.protocol);
  // The common case (a free slot) takes no promise and no extra microtask turn.
  const admission = limiter.tryAdmit(scope.signal) ?? (await limiter.admit(scope.signal));
  if (!admission.ok) return local(503, "UO", `upstream overflow (circuit breaker of ${cluster.key}): ${admission.reason}`, 0);
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    admission.release();
  };
  try {
    const result = await attempts(deps, d, cluster, scope, deadline, limiter);
    if (result.kind === "local") release();
    else {
      const inner = result.done;
      result.done = () => {
        inner();
        release();
      };
    }
    if (delayed && result.flags === "-") result.flags = "DI";
    return result;
  } catch (e) {
    release();
    return local(503, "UC", `internal error forwarding the request: ${(e as Error).message}`, 0);
  }
}

async function attempts(
  deps: L7Deps,
  d: Forward,
  cluster: UpstreamCluster,
  scope: ForwardScope,
  deadline: number,
  limiter: ReturnType<LimiterRegistry["forCluster"]>,
): Promise<ForwardResult> {
  const view = deps.ctx.view();
  const outlier = deps.outliers.forCluster(cluster.key, cluster.policy.outlierDetection);
  const balancer = deps.balancers.forCluster(cluster.key, cluster.policy.loadBalancer);
  const tried = new Set<string>();
  const balanceCtx = { headers: scope.head.headers, sourceIp: scope.sourceIp, query: scope.query };
  const maxAttempts = 1 + Math.max(0, d.retries.attempts);
  for (let attempt = 1; ; attempt++) {
    const candidates = outlier ? outlier.healthy(cluster.endpoints) : cluster.endpoints;
    const picked = candidates.length > 0 ? balancer.pick(candidates, balanceCtx, tried) : undefined;
    if (!picked) {
      return local(503, "UH", `no healthy upstream in ${cluster.key} (${cluster.endpoints.length} endpoints, none usable)`, attempt - 1);
    }
    const addr = picked.endpoint.address;
    tried.add(addr);
    const target = targetOf(view, picked.endpoint, cluster.port.targetPort);
    balancer.started(addr);
    const ex = deps.clients.send(scope.source, scope.sourceIp, target, scope.protocol, scope.head, clientSettings(cluster.policy));
    scope.body.attach(ex.body);
    const onAbort = () => ex.abort();
    scope.signal.addEventListener("abort", onAbort, { once: true });
    const remaining = deadline - Date.now();
    const perTry = d.retries.perTryTimeoutMs && d.retries.perTryTimeoutMs > 0 ? d.retries.perTryTimeoutMs : Number.POSITIVE_INFINITY;
    const settled = await within(ex.response, Math.min(perTry, remaining));
    scope.signal.removeEventListener("abort", onAbort);
    let outcome: UpstreamOutcome;
    if (settled === "timeout") {
      ex.abort();
      outcome = { kind: "timeout" };
    } else if (!settled.ok) {
      outcome = outcomeOfFailure(settled.failure);
    } else {
      const gs = grpcStatusOf(settled.response.headers as Record<string, unknown>);
      outcome = { kind: "response", status: settled.response.status, ...(gs !== undefined ? { grpcStatus: gs } : {}) };
    }
    // A policy refusal by the destination is an answer about the caller, not the endpoint's health.
    if (settled === "timeout" || settled.ok || settled.failure.kind !== "denied") outlier?.record(addr, outcome);
    const finishedHere = () => balancer.finished(addr);
    if (scope.signal.aborted) {
      finishedHere();
      if (settled !== "timeout" && settled.ok) settled.response.body.destroy();
      return local(499, "DC", "downstream closed before the response", attempt, target);
    }
    const timeLeft = deadline - Date.now() > 0;
    const wantRetry =
      attempt < maxAttempts &&
      timeLeft &&
      retriable(d.retries, outcome) &&
      scope.body.replayable &&
      !(settled !== "timeout" && !settled.ok && settled.failure.kind === "denied");
    const budget = wantRetry ? limiter.tryRetry() : undefined;
    if (!budget?.ok) {
      const exhausted = attempt > 1 && retriable(d.retries, outcome);
      if (settled === "timeout") {
        finishedHere();
        return local(504, "UT", `upstream ${addr} did not answer in time (${attempt} attempt${attempt > 1 ? "s" : ""})`, attempt, target);
      }
      if (!settled.ok) {
        finishedHere();
        const f = settled.failure;
        if (f.kind === "denied") return local(403, "DENY", `destination refused: ${f.error.message}`, attempt, target);
        const flag: ResponseFlag = exhausted ? "URX" : f.kind === "connect-failure" ? "UF" : "UC";
        return local(503, flag, `upstream ${addr}: ${f.error.message}`, attempt, target);
      }
      return {
        kind: "response",
        response: settled.response,
        target,
        attempts: attempt,
        flags: exhausted ? "URX" : "-",
        deadline,
        ...(picked.setCookie ? { setCookie: picked.setCookie } : {}),
        done: finishedHere,
        abort: () => ex.abort(),
      };
    }
    // Retrying: throw this attempt's answer away and wait the backoff.
    if (settled !== "timeout" && settled.ok) settled.response.body.destroy();
    scope.body.detach();
    finishedHere();
    await sleep(Math.min(backoffMs(attempt), Math.max(0, deadline - Date.now())), scope.signal);
    budget.release();
  }
}
