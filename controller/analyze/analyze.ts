/**
 * `weft analyze`: validation of Istio/Kubernetes configuration before and after apply, in the
 * spirit of `istioctl analyze`. Runs the controller's own translation (so what it reports is what
 * the mesh would do) and maps its diagnostics to stable codes, then adds checks across objects.
 */
import type { KubeObject } from "../api/kube-types.js";
import { classify } from "../sources/kinds.js";
import { ServiceIndex } from "../translate/hosts.js";
import { DEFAULT_TRANSLATE_OPTIONS, translate } from "../translate/index.js";
import { type ClusterObjects, type Diagnostic, SOURCE_KINDS, type SourceKind, type TranslateOptions } from "../translate/types.js";
import type { CodeName } from "./codes.js";
import type { CheckContext } from "./context.js";
import { type AnalysisMessage, message, objectName, sortMessages } from "./message.js";
import { checkRouting } from "./routing.js";
import { checkMesh, checkSecurity } from "./security.js";

/** One object given to the analyzer, with where it came from. */
export interface InputObject {
  object: KubeObject;
  origin?: string;
}

/** What to analyze. */
export interface AnalyzeInput {
  objects: readonly InputObject[];
  /** Problems reading the input (unreadable files, YAML errors), reported as UnreadableInput. */
  inputProblems?: readonly string[];
  /** Nodes where an agent runs (live analysis): enables NodeWithoutAgent. */
  agentNodes?: readonly string[];
  options?: TranslateOptions;
  /**
   * Whether the input would hold RequestAuthentications if any existed (files: yes; the
   * controller's store does not read them, so live analysis cannot tell and skips that check).
   */
  readsRequestAuthentications?: boolean;
}

/** Translation's diagnostics mapped to the codes that say more than "invalid". */
const DIAGNOSTIC_CODES: readonly [RegExp, CodeName][] = [
  [/subset '.*' of host .* is unknown/, "UnknownSubset"],
  [/weights of the \d+ destinations add up to/, "WeightsNot100"],
  [/is not a known Service|match no Service/, "HostNotFound"],
  [/is defined twice/, "DuplicateSubset"],
  [/names only gateways|has no Service parentRef/, "GatewayOnlyRoute"],
];

function fromDiagnostic(d: Diagnostic): AnalysisMessage {
  const name = DIAGNOSTIC_CODES.find(([re]) => re.test(d.message))?.[1] ?? (d.severity === "error" ? "InvalidObject" : "UnsupportedField");
  return message(name, objectName(d.ref), d.message);
}

/** Analyzes objects; messages sorted, errors first. */
export function analyze(input: AnalyzeInput): AnalysisMessage[] {
  const opts = input.options ?? DEFAULT_TRANSLATE_OPTIONS;
  const byKind = new Map<SourceKind, KubeObject[]>(SOURCE_KINDS.map((k) => [k, []]));
  const requestAuthentications: KubeObject[] = [];
  const out: AnalysisMessage[] = (input.inputProblems ?? []).map((p) => message("UnreadableInput", undefined, p));
  const origins = new Map<string, string>();
  // An object given twice (same kind, namespace, name): the later one wins, as with kubectl apply.
  const latest = new Map(
    input.objects.map((i) => [`${i.object.kind}/${i.object.metadata?.namespace ?? ""}/${i.object.metadata?.name}`, i]),
  );
  for (const { object: o, origin } of latest.values()) {
    const c = classify(o.apiVersion, o.kind);
    if (origin) origins.set(objectName({ kind: o.kind, namespace: o.metadata.namespace, name: o.metadata.name }), origin);
    if ("kind" in c) (byKind.get(c.kind) as KubeObject[]).push(o);
    else if (o.kind === "RequestAuthentication" && String(o.apiVersion).startsWith("security.istio.io/")) requestAuthentications.push(o);
    else
      out.push(
        message(
          "IgnoredKind",
          objectName({ kind: String(o.kind), namespace: o.metadata?.namespace, name: String(o.metadata?.name) }),
          c.error,
        ),
      );
  }
  const objects = Object.fromEntries(byKind) as unknown as ClusterObjects;
  const model = translate(objects, opts);
  out.push(...model.diagnostics.map(fromDiagnostic));
  const ctx: CheckContext = {
    objects,
    requestAuthentications,
    model,
    index: new ServiceIndex(model.services, opts.clusterDomain),
    opts,
    namespaces: objects.Namespace.length ? new Set(objects.Namespace.map((n) => n.metadata.name)) : undefined,
    agentNodes: input.agentNodes ? new Set(input.agentNodes) : undefined,
    readsRequestAuthentications: input.readsRequestAuthentications ?? true,
    out,
  };
  checkRouting(ctx);
  checkSecurity(ctx);
  checkMesh(ctx);
  for (const m of out) {
    const origin = m.object ? origins.get(m.object) : undefined;
    if (origin) m.origin = origin;
  }
  return sortMessages(out);
}

/** Whether any message is an error (the exit status of `weft analyze`). */
export function hasErrors(messages: readonly AnalysisMessage[]): boolean {
  return messages.some((m) => m.severity === "error");
}
