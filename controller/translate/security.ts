/**
 * security.istio.io AuthorizationPolicy and PeerAuthentication → the model, fail-closed: input
 * that cannot be understood never widens access. What weft cannot enforce is handled as Istio's
 * node proxy does: an ALLOW/AUDIT rule that uses an unsupported field is dropped (it can never
 * match), while a DENY rule loses only that field (so it matches, and denies, more); a warning
 * says so. What is invalid (typos, unknown keys, bad CIDRs or ports, wrong types) keeps the
 * policy in force in a stricter form (see translateAuthorizationPolicy) and is reported as an
 * error with its field path, every one of them, not just the first.
 */
import { isIP } from "node:net";
import type { KubeObject } from "../api/kube-types.js";
import type {
  AuthorizationPolicy,
  AuthzCondition,
  AuthzOperation,
  AuthzRule,
  AuthzSource,
  MtlsMode,
  PeerAuthentication,
  PolicyScope,
} from "../api/model.js";
import { Fields, InvalidField } from "./fields.js";
import { type Diagnostics, refOf, type TranslateOptions } from "./types.js";

const MTLS_MODES: readonly MtlsMode[] = ["STRICT", "PERMISSIVE", "DISABLE", "UNSET"];
const SOURCE_UNSUPPORTED = ["remoteIpBlocks", "notRemoteIpBlocks"];
const CONDITION_KEYS =
  /^(source\.ip|source\.namespace|source\.principal|remote\.ip|destination\.ip|destination\.port|connection\.sni|request\.headers\[[^\]]+\]|request\.auth\.(principal|audiences|presenter)|request\.auth\.claims(\[[^\]]+\])+)$/;
const CONDITION_UNSUPPORTED = /^(request\.regex\.headers|experimental\.)/;

function checkCidr(value: string, path: string): void {
  const [addr, prefix, extra] = value.split("/");
  const fam = isIP(addr ?? "");
  const max = fam === 4 ? 32 : 128;
  if (fam === 0 || extra !== undefined || (prefix !== undefined && (!/^\d{1,3}$/.test(prefix) || Number(prefix) > max))) {
    throw new InvalidField(path, `'${value}' is not an IP address or CIDR`);
  }
}

function checkPort(value: string, path: string): number {
  if (!/^\d{1,5}$/.test(value) || Number(value) < 1 || Number(value) > 65535)
    throw new InvalidField(path, `'${value}' is not a port number`);
  return Number(value);
}

/** spec.selector → scope. The root namespace's selector applies in every namespace (Istio). */
function scopeOf(spec: Fields, namespace: string, opts: TranslateOptions, rootSelectorIsMeshWide: boolean): PolicyScope {
  const sel = spec.obj("selector");
  const labels = sel?.map("matchLabels");
  sel?.finish();
  const hasSelector = labels !== undefined && Object.keys(labels).length > 0;
  if (namespace === opts.rootNamespace) {
    if (!hasSelector) return { kind: "mesh" };
    return rootSelectorIsMeshWide ? { kind: "mesh", selector: labels } : { kind: "workload", selector: labels };
  }
  return hasSelector ? { kind: "workload", selector: labels } : { kind: "namespace" };
}

function rootHint(obj: KubeObject, hasSelector: boolean, opts: TranslateOptions, diags: Diagnostics): void {
  if (obj.metadata.namespace === "istio-system" && opts.rootNamespace !== "istio-system" && !hasSelector) {
    diags.warn(
      refOf(obj),
      `istio-system is not the root namespace here (it is ${opts.rootNamespace}): this policy applies to istio-system only; run the controller with --root-namespace istio-system to make it mesh-wide`,
    );
  }
}

type Unsupported = (what: string) => void;

/** Problems found in one part of an object (every one is reported, not just the first). */
class Problems {
  readonly list: string[] = [];

  /** A sink for Fields: unknown keys become problems. */
  readonly sink = (path: string, note: string): void => {
    this.list.push(`${path}: ${note}`);
  };

  /** Runs fn; an InvalidField it throws is recorded and fallback returned. */
  run<T>(fn: () => T, fallback: T): T {
    try {
      return fn();
    } catch (e) {
      if (!(e instanceof InvalidField)) throw e;
      this.list.push(e.message);
      return fallback;
    }
  }
}

function source(f: Fields, unsupported: Unsupported, opts: TranslateOptions, p: Problems): AuthzSource {
  const s: AuthzSource = {};
  const principals = (key: string) => p.run(() => f.strList(key), []).map((v) => v.replace(/^spiffe:\/\//, ""));
  const sa = (key: string) =>
    p
      .run(() => f.strList(key), [])
      .flatMap((v, i) => {
        const [ns, name, extra] = v.split("/");
        if (ns && name && extra === undefined) return [`${opts.trustDomain}/ns/${ns}/sa/${name}`];
        p.list.push(`${f.at(key)}[${i}]: '${v}' is not '<namespace>/<service account>'`);
        return [];
      });
  const pr = [...principals("principals"), ...sa("serviceAccounts")];
  const np = [...principals("notPrincipals"), ...sa("notServiceAccounts")];
  if (pr.length) s.principals = pr;
  if (np.length) s.notPrincipals = np;
  const ns = p.run(() => f.strList("namespaces"), []);
  if (ns.length) s.namespaces = ns;
  const nns = p.run(() => f.strList("notNamespaces"), []);
  if (nns.length) s.notNamespaces = nns;
  const rp = p.run(() => f.strList("requestPrincipals"), []);
  if (rp.length) s.requestPrincipals = rp;
  const nrp = p.run(() => f.strList("notRequestPrincipals"), []);
  if (nrp.length) s.notRequestPrincipals = nrp;
  for (const key of ["ipBlocks", "notIpBlocks"] as const) {
    const v = p.run(() => f.strList(key), []);
    for (const [i, c] of v.entries()) p.run(() => checkCidr(c, `${f.at(key)}[${i}]`), undefined);
    if (v.length) s[key] = v;
  }
  for (const key of SOURCE_UNSUPPORTED) if (f.has(key)) unsupported(f.at(key));
  f.accept(...SOURCE_UNSUPPORTED);
  f.finish();
  return s;
}

function operation(f: Fields, p: Problems): AuthzOperation {
  const o: AuthzOperation = {};
  for (const key of ["ports", "notPorts"] as const) {
    const v = p.run(() => f.strList(key), []).map((x, i) => p.run(() => checkPort(x, `${f.at(key)}[${i}]`), 0));
    if (v.length) o[key] = v;
  }
  for (const key of ["hosts", "notHosts", "paths", "notPaths"] as const) {
    const v = p.run(() => f.strList(key), []);
    if (v.length) o[key] = v;
  }
  for (const key of ["methods", "notMethods"] as const) {
    const v = p.run(() => f.strList(key), []).map((m) => m.toUpperCase());
    if (v.length) o[key] = v;
  }
  f.finish();
  return o;
}

function condition(f: Fields, unsupported: Unsupported, p: Problems): AuthzCondition | null {
  const key = p.run(() => f.reqStr("key"), "");
  const values = p.run(() => f.strList("values"), []);
  const notValues = p.run(() => f.strList("notValues"), []);
  f.finish();
  if (key === "") return null;
  if (CONDITION_UNSUPPORTED.test(key)) {
    unsupported(`${f.at("key")} '${key}'`);
    return null;
  }
  if (!CONDITION_KEYS.test(key)) {
    p.list.push(`${f.at("key")}: '${key}' is not a condition key Istio defines`);
    return null;
  }
  if (!values.length && !notValues.length) p.list.push(`${f.path}: a condition needs values or notValues`);
  for (const [i, v] of values.entries()) {
    if (key.endsWith(".ip")) p.run(() => checkCidr(v, `${f.at("values")}[${i}]`), undefined);
    if (key === "destination.port") p.run(() => checkPort(v, `${f.at("values")}[${i}]`), 0);
  }
  for (const [i, v] of notValues.entries()) {
    if (key.endsWith(".ip")) p.run(() => checkCidr(v, `${f.at("notValues")}[${i}]`), undefined);
    if (key === "destination.port") p.run(() => checkPort(v, `${f.at("notValues")}[${i}]`), 0);
  }
  const c: AuthzCondition = { key };
  if (values.length) c.values = values;
  if (notValues.length) c.notValues = notValues;
  return c;
}

/** A DENY rule that matches every request: what a DENY that cannot be understood becomes. */
const MATCH_ALL: AuthzRule = { from: [], to: [], when: [] };

function rule(
  f: Fields,
  action: string,
  opts: TranslateOptions,
  warn: (path: string, note: string) => void,
  problems: Problems,
): AuthzRule | null {
  const unsupportedFields: string[] = [];
  const unsupported: Unsupported = (what) => unsupportedFields.push(what);
  const from = problems
    .run(() => f.list("from"), [])
    .map((x) => {
      const src = problems.run(() => x.obj("source"), undefined);
      x.finish();
      return src ? source(src, unsupported, opts, problems) : {};
    });
  const to = problems
    .run(() => f.list("to"), [])
    .map((x) => {
      const op = problems.run(() => x.obj("operation"), undefined);
      x.finish();
      return op ? operation(op, problems) : {};
    });
  const when = problems
    .run(() => f.list("when"), [])
    .map((x) => condition(x, unsupported, problems))
    .filter((c): c is AuthzCondition => c !== null);
  f.finish();
  if (problems.list.length > 0) return null;
  if (unsupportedFields.length === 0) return { from, to, when };
  if (action === "DENY") {
    warn(
      f.path,
      `uses ${unsupportedFields.join(", ")}, which weft cannot check: that part is dropped, so this DENY rule denies more (fail closed)`,
    );
    return { from, to, when };
  }
  warn(
    f.path,
    `uses ${unsupportedFields.join(", ")}, which weft cannot check: this ${action} rule is dropped and never matches (fail closed)`,
  );
  return null;
}

type Action = "ALLOW" | "DENY" | "AUDIT";

/** The broadest scope a policy in this namespace can have: where an unreadable selector leaves it. */
function broadestScope(namespace: string, opts: TranslateOptions): PolicyScope {
  return namespace === opts.rootNamespace ? { kind: "mesh" } : { kind: "namespace" };
}

/** The policy's scope; the broadest one when spec.selector cannot be fully understood. */
function readScope(spec: Fields | undefined, namespace: string, opts: TranslateOptions, rootMeshWide: boolean, p: Problems): PolicyScope {
  if (!spec) return broadestScope(namespace, opts);
  const before = p.list.length;
  const scope = p.run(() => scopeOf(spec, namespace, opts, rootMeshWide), undefined);
  const selectorOk = p.list.slice(before).every((e) => !e.startsWith("spec.selector"));
  return scope && selectorOk ? scope : broadestScope(namespace, opts);
}

/**
 * Translates one AuthorizationPolicy, failing closed: an invalid policy is not dropped (that
 * would allow what it was written to stop) but kept in force in a form that never widens access.
 * An invalid ALLOW allows nothing, so its scope is default-deny for whatever no other ALLOW
 * allows; an invalid DENY, or a policy whose action cannot be read, denies its whole scope. A
 * rule that cannot be understood is dropped from an ALLOW (it matches nothing) and turned into a
 * match-all rule in a DENY (a DENY rule that cannot be read must deny). The problems travel in
 * `errors` and each is reported with its field path. null only for policies weft does not apply
 * to workloads at all (targetRef, CUSTOM).
 */
export function translateAuthorizationPolicy(obj: KubeObject, opts: TranslateOptions, diags: Diagnostics): AuthorizationPolicy | null {
  const ref = refOf(obj);
  const warn = (path: string, note: string) => diags.warn(ref, `${path} ${note}`);
  const namespace = obj.metadata.namespace ?? "default";
  const top = new Problems();
  const spec = top.run(() => Fields.of(obj.spec ?? {}, "spec", top.sink, true), undefined);
  if (spec?.has("targetRef") || spec?.has("targetRefs")) {
    diags.warn(ref, "spec.targetRef(s) binds the policy to a gateway or waypoint, which weft does not have: the policy is not applied");
    return null;
  }
  const rawAction = spec ? top.run(() => spec.str("action"), null) : null;
  let action: Action | undefined;
  if (rawAction === undefined) action = "ALLOW";
  else if (rawAction !== null) {
    const a = rawAction.toUpperCase();
    if (a === "CUSTOM") {
      diags.warn(ref, "action CUSTOM (external authorization) is not supported: the policy is not applied");
      return null;
    }
    if (a === "ALLOW" || a === "DENY" || a === "AUDIT") action = a;
    else top.list.push(`spec.action: '${rawAction}' is not ALLOW, DENY, AUDIT or CUSTOM`);
  }
  if (spec?.has("provider")) {
    spec.accept("provider");
    top.list.push("spec.provider: is only valid with action CUSTOM");
  }
  const scope = readScope(spec, namespace, opts, true, top);
  if (spec) rootHint(obj, scope.selector !== undefined, opts, diags);
  const ruleProblems: string[] = [];
  const rules: AuthzRule[] = [];
  let ruleFields: Fields[] = [];
  if (spec) ruleFields = top.run(() => spec.list("rules"), []);
  spec?.finish();
  // A misspelt action key (acton: DENY) leaves the action at its ALLOW default: unknown.
  if (rawAction === undefined && top.list.some((p) => /^spec\.[^.[]+: unknown field/.test(p))) action = undefined;
  for (const rf of ruleFields) {
    const problems = new Problems();
    const r = rule(rf.withSink(problems.sink), action ?? "DENY", opts, warn, problems);
    if (problems.list.length > 0) {
      ruleProblems.push(...problems.list);
      if (action === "DENY") rules.push(MATCH_ALL);
    } else if (r) rules.push(r);
  }
  const key = `${namespace}/${obj.metadata.name}`;
  const base = { key, name: obj.metadata.name, namespace, scope, ...dryRunOf(obj, diags) };
  if (top.list.length > 0 || action === undefined) {
    const denyAll = action === undefined || action === "DENY";
    const effect = denyAll
      ? "the policy denies every request in its scope (fail closed)"
      : action === "ALLOW"
        ? "the policy stays in force and allows nothing, so its scope denies what no other ALLOW policy allows (fail closed)"
        : "the AUDIT policy matches nothing";
    const errors = [...top.list, ...ruleProblems];
    for (const e of errors) diags.error(ref, `invalid: ${e}; ${effect}`);
    return { ...base, action: denyAll ? "DENY" : (action as Action), rules: denyAll ? [MATCH_ALL] : [], errors };
  }
  if (ruleProblems.length > 0) {
    const effect =
      action === "DENY"
        ? "the rule is replaced by one that matches every request, so the policy denies its whole scope (fail closed)"
        : `the rule is dropped and never matches${action === "ALLOW" ? " (fail closed)" : ""}`;
    for (const e of ruleProblems) diags.error(ref, `invalid: ${e}; ${effect}`);
    return { ...base, action, rules: dedupeMatchAll(rules), errors: ruleProblems };
  }
  return { ...base, action, rules };
}

/**
 * The `istio.io/dry-run` annotation: "true" evaluates the policy without enforcing it. Any other
 * value than "true"/"false" is reported and the policy is enforced (a typo must not switch a
 * DENY off).
 */
function dryRunOf(obj: KubeObject, diags: Diagnostics): { dryRun?: true } {
  const v = obj.metadata.annotations?.["istio.io/dry-run"];
  if (v === undefined || v === "false") return {};
  if (v === "true") return { dryRun: true };
  diags.error(refOf(obj), `invalid: metadata.annotations.istio.io/dry-run: '${v}' is not "true" or "false"; the policy is enforced`);
  return {};
}

/** One match-all rule is enough: several say nothing more. */
function dedupeMatchAll(rules: AuthzRule[]): AuthzRule[] {
  return rules.includes(MATCH_ALL) ? [MATCH_ALL] : rules;
}

function mode(v: string | undefined, path: string): MtlsMode {
  const m = (v ?? "UNSET").toUpperCase();
  if (!(MTLS_MODES as readonly string[]).includes(m)) throw new InvalidField(path, `'${v}' is not one of ${MTLS_MODES.join(", ")}`);
  return m as MtlsMode;
}

/**
 * Translates one PeerAuthentication. Invalid ones resolve to STRICT for their scope (the widest
 * scope of the namespace when the selector itself cannot be read), with every problem reported:
 * a typo must never turn mutual TLS off.
 */
export function translatePeerAuthentication(obj: KubeObject, opts: TranslateOptions, diags: Diagnostics): PeerAuthentication | null {
  const ref = refOf(obj);
  const namespace = obj.metadata.namespace ?? "default";
  const problems = new Problems();
  const spec = problems.run(() => Fields.of(obj.spec ?? {}, "spec", problems.sink, true), undefined);
  const scope = readScope(spec, namespace, opts, false, problems);
  if (spec) rootHint(obj, scope.selector !== undefined, opts, diags);
  let m: MtlsMode = "STRICT";
  const portLevelMtls: Record<string, MtlsMode> = {};
  if (spec) {
    const mtls = problems.run(() => spec.obj("mtls"), undefined);
    m = problems.run(() => mode(mtls?.str("mode"), "spec.mtls.mode"), "STRICT");
    mtls?.finish();
    const pl = problems.run(() => spec.obj("portLevelMtls"), undefined);
    if (pl) {
      if (scope.selector === undefined)
        problems.list.push("spec.portLevelMtls: needs spec.selector (port-level settings apply to selected workloads only)");
      for (const port of Object.keys(pl.value)) {
        problems.run(() => checkPort(port, `spec.portLevelMtls.${port}`), 0);
        const entry = problems.run(() => pl.obj(port), undefined);
        if (!entry) continue;
        portLevelMtls[port] = problems.run(() => mode(entry.str("mode"), `spec.portLevelMtls.${port}.mode`), "STRICT");
        entry.finish();
      }
    }
    spec.finish();
  }
  const base = { key: `${namespace}/${obj.metadata.name}`, name: obj.metadata.name, namespace, scope };
  if (problems.list.length === 0) return { ...base, mode: m, portLevelMtls };
  for (const e of problems.list) diags.error(ref, `invalid: ${e}; mTLS is STRICT for the policy's whole scope (fail closed)`);
  return { ...base, mode: "STRICT", portLevelMtls: {}, errors: problems.list };
}
