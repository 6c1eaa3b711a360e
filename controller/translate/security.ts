/**
 * security.istio.io AuthorizationPolicy and PeerAuthentication → the model. What weft cannot
 * enforce is handled fail-closed, as Istio's node proxy does: an ALLOW/AUDIT rule that uses an
 * unsupported field is dropped (it can never match), while a DENY rule loses only that field
 * (so it matches, and denies, more). Either way the object gets a warning saying so.
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
const SOURCE_UNSUPPORTED = ["requestPrincipals", "notRequestPrincipals", "remoteIpBlocks", "notRemoteIpBlocks"];
const CONDITION_KEYS =
  /^(source\.ip|source\.namespace|source\.principal|remote\.ip|destination\.ip|destination\.port|connection\.sni|request\.headers\[[^\]]+\])$/;
const CONDITION_UNSUPPORTED = /^(request\.auth\.|request\.regex\.headers|experimental\.)/;

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

function source(f: Fields, unsupported: Unsupported, opts: TranslateOptions): AuthzSource {
  const s: AuthzSource = {};
  const principals = (key: string) => f.strList(key).map((p) => p.replace(/^spiffe:\/\//, ""));
  const sa = (key: string) =>
    f.strList(key).map((v, i) => {
      const [ns, name, extra] = v.split("/");
      if (!ns || !name || extra !== undefined)
        throw new InvalidField(`${f.at(key)}[${i}]`, `'${v}' is not '<namespace>/<service account>'`);
      return `${opts.trustDomain}/ns/${ns}/sa/${name}`;
    });
  const p = [...principals("principals"), ...sa("serviceAccounts")];
  const np = [...principals("notPrincipals"), ...sa("notServiceAccounts")];
  if (p.length) s.principals = p;
  if (np.length) s.notPrincipals = np;
  const ns = f.strList("namespaces");
  if (ns.length) s.namespaces = ns;
  const nns = f.strList("notNamespaces");
  if (nns.length) s.notNamespaces = nns;
  for (const key of ["ipBlocks", "notIpBlocks"] as const) {
    const v = f.strList(key);
    for (const [i, c] of v.entries()) checkCidr(c, `${f.at(key)}[${i}]`);
    if (v.length) s[key] = v;
  }
  for (const key of SOURCE_UNSUPPORTED) if (f.has(key)) unsupported(f.at(key));
  f.accept(...SOURCE_UNSUPPORTED);
  f.finish();
  return s;
}

function operation(f: Fields): AuthzOperation {
  const o: AuthzOperation = {};
  for (const key of ["ports", "notPorts"] as const) {
    const v = f.strList(key).map((p, i) => checkPort(p, `${f.at(key)}[${i}]`));
    if (v.length) o[key] = v;
  }
  for (const key of ["hosts", "notHosts", "paths", "notPaths"] as const) {
    const v = f.strList(key);
    if (v.length) o[key] = v;
  }
  for (const key of ["methods", "notMethods"] as const) {
    const v = f.strList(key).map((m) => m.toUpperCase());
    if (v.length) o[key] = v;
  }
  f.finish();
  return o;
}

function condition(f: Fields, unsupported: Unsupported): AuthzCondition | null {
  const key = f.reqStr("key");
  const values = f.strList("values");
  const notValues = f.strList("notValues");
  f.finish();
  if (CONDITION_UNSUPPORTED.test(key)) {
    unsupported(`${f.at("key")} '${key}'`);
    return null;
  }
  if (!CONDITION_KEYS.test(key)) throw new InvalidField(f.at("key"), `'${key}' is not a condition key Istio defines`);
  if (!values.length && !notValues.length) throw new InvalidField(f.path, "a condition needs values or notValues");
  for (const v of [...values, ...notValues]) {
    if (key.endsWith(".ip")) checkCidr(v, f.at("values"));
    if (key === "destination.port") checkPort(v, f.at("values"));
  }
  const c: AuthzCondition = { key };
  if (values.length) c.values = values;
  if (notValues.length) c.notValues = notValues;
  return c;
}

function rule(f: Fields, action: string, opts: TranslateOptions, warn: (path: string, note: string) => void): AuthzRule | null {
  const unsupportedFields: string[] = [];
  const unsupported: Unsupported = (what) => unsupportedFields.push(what);
  const from = f.list("from").map((x) => {
    const src = x.obj("source");
    x.finish();
    return src ? source(src, unsupported, opts) : {};
  });
  const to = f.list("to").map((x) => {
    const op = x.obj("operation");
    x.finish();
    return op ? operation(op) : {};
  });
  const when = f
    .list("when")
    .map((x) => condition(x, unsupported))
    .filter((c): c is AuthzCondition => c !== null);
  f.finish();
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

/** Translates one AuthorizationPolicy; null when it is not applied (reported). */
export function translateAuthorizationPolicy(obj: KubeObject, opts: TranslateOptions, diags: Diagnostics): AuthorizationPolicy | null {
  const ref = refOf(obj);
  const warn = (path: string, note: string) => diags.warn(ref, `${path} ${note}`);
  const namespace = obj.metadata.namespace ?? "default";
  try {
    const spec = Fields.of(obj.spec ?? {}, "spec", warn);
    if (spec.has("targetRef") || spec.has("targetRefs")) {
      diags.warn(ref, "spec.targetRef(s) binds the policy to a gateway or waypoint, which weft does not have: the policy is not applied");
      return null;
    }
    const action = (spec.str("action") ?? "ALLOW").toUpperCase();
    if (action === "CUSTOM") {
      diags.warn(ref, "action CUSTOM (external authorization) is not supported: the policy is not applied");
      spec.accept("provider", "rules", "selector");
      return null;
    }
    if (action !== "ALLOW" && action !== "DENY" && action !== "AUDIT") {
      throw new InvalidField("spec.action", `'${action}' is not ALLOW, DENY, AUDIT or CUSTOM`);
    }
    if (spec.has("provider")) throw new InvalidField("spec.provider", "is only valid with action CUSTOM");
    const scope = scopeOf(spec, namespace, opts, true);
    rootHint(obj, scope.selector !== undefined, opts, diags);
    const rules = spec
      .list("rules")
      .map((r) => rule(r, action, opts, warn))
      .filter((r): r is AuthzRule => r !== null);
    spec.finish();
    return { key: `${namespace}/${obj.metadata.name}`, name: obj.metadata.name, namespace, scope, action, rules };
  } catch (e) {
    if (!(e instanceof InvalidField)) throw e;
    diags.error(ref, `invalid: ${e.message}; policy skipped`);
    return null;
  }
}

function mode(v: string | undefined, path: string): MtlsMode {
  const m = (v ?? "UNSET").toUpperCase();
  if (!(MTLS_MODES as readonly string[]).includes(m)) throw new InvalidField(path, `'${v}' is not one of ${MTLS_MODES.join(", ")}`);
  return m as MtlsMode;
}

/** Translates one PeerAuthentication; null when invalid (reported). */
export function translatePeerAuthentication(obj: KubeObject, opts: TranslateOptions, diags: Diagnostics): PeerAuthentication | null {
  const ref = refOf(obj);
  const warn = (path: string, note: string) => diags.warn(ref, `${path} ${note}`);
  const namespace = obj.metadata.namespace ?? "default";
  try {
    const spec = Fields.of(obj.spec ?? {}, "spec", warn);
    const scope = scopeOf(spec, namespace, opts, false);
    rootHint(obj, scope.selector !== undefined, opts, diags);
    const mtls = spec.obj("mtls");
    const m = mode(mtls?.str("mode"), "spec.mtls.mode");
    mtls?.finish();
    const portLevelMtls: Record<string, MtlsMode> = {};
    const pl = spec.obj("portLevelMtls");
    if (pl) {
      if (scope.selector === undefined)
        throw new InvalidField("spec.portLevelMtls", "needs spec.selector (port-level settings apply to selected workloads only)");
      for (const port of Object.keys(pl.value)) {
        checkPort(port, `spec.portLevelMtls.${port}`);
        const entry = pl.obj(port) as Fields;
        portLevelMtls[port] = mode(entry.str("mode"), `spec.portLevelMtls.${port}.mode`);
        entry.finish();
      }
    }
    spec.finish();
    return { key: `${namespace}/${obj.metadata.name}`, name: obj.metadata.name, namespace, scope, mode: m, portLevelMtls };
  } catch (e) {
    if (!(e instanceof InvalidField)) throw e;
    diags.error(ref, `invalid: ${e.message}; policy skipped`);
    return null;
  }
}
