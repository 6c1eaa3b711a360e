/**
 * Checks Kubernetes manifests against the API's OpenAPI schema as @kubernetes/client-node ships
 * it: its models are generated from the Kubernetes OpenAPI document (v1.34 for client-node 1.4),
 * required fields as non-optional properties, every other field optional and typed. Each object
 * becomes a typed literal in a virtual TypeScript file, and the compiler reports unknown fields
 * (excess property checks), missing required ones and wrong types, with the document's path.
 */
import { dirname, join } from "node:path";
import ts from "typescript";

/** One manifest and where it came from (for messages). */
export interface Manifest {
  where: string;
  object: Record<string, unknown>;
}

/** apiVersion/kind → the client-node model that describes it. */
const MODELS: Record<string, string> = {
  "v1/Namespace": "V1Namespace",
  "v1/ServiceAccount": "V1ServiceAccount",
  "v1/Service": "V1Service",
  "v1/ConfigMap": "V1ConfigMap",
  "v1/Secret": "V1Secret",
  "apps/v1/Deployment": "V1Deployment",
  "apps/v1/DaemonSet": "V1DaemonSet",
  "policy/v1/PodDisruptionBudget": "V1PodDisruptionBudget",
  "rbac.authorization.k8s.io/v1/ClusterRole": "V1ClusterRole",
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": "V1ClusterRoleBinding",
  "rbac.authorization.k8s.io/v1/Role": "V1Role",
  "rbac.authorization.k8s.io/v1/RoleBinding": "V1RoleBinding",
  "coordination.k8s.io/v1/Lease": "V1Lease",
  "apiextensions.k8s.io/v1/CustomResourceDefinition": "V1CustomResourceDefinition",
};

/** The Kubernetes version whose OpenAPI document the shipped models were generated from. */
export function schemaVersion(repoRoot: string): string {
  const text = ts.sys.readFile(join(repoRoot, "node_modules/@kubernetes/client-node/dist/gen/models/V1Pod.d.ts")) ?? "";
  return /OpenAPI spec version: (v[\d.]+)/.exec(text)?.[1] ?? "unknown";
}

/** Problems with the manifests (empty when all validate). repoRoot resolves node_modules. */
export function validateManifests(manifests: Manifest[], repoRoot: string): string[] {
  const problems: string[] = [];
  const lines = ['import type * as k from "@kubernetes/client-node";'];
  const origin: string[] = [];
  for (const m of manifests) {
    const key = `${String(m.object.apiVersion)}/${String(m.object.kind)}`;
    const model = MODELS[key];
    if (!model) {
      problems.push(`${m.where}: no schema known for ${key}`);
      continue;
    }
    origin.push(m.where);
    lines.push(`export const m${origin.length - 1}: k.${model} = ${JSON.stringify(m.object, null, 1)};`);
  }
  const file = join(repoRoot, "test", "__manifests__.ts");
  const source = lines.join("\n");
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, lang, onError, create) =>
    name === file ? ts.createSourceFile(name, source, lang) : getSourceFile(name, lang, onError, create);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === file || fileExists(name);
  host.getCurrentDirectory = () => dirname(file);
  const program = ts.createProgram([file], options, host);
  const sf = program.getSourceFile(file);
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const text = ts.flattenDiagnosticMessageText(d.messageText, "\n");
    if (d.file !== sf || d.start === undefined || !sf) {
      problems.push(text);
      continue;
    }
    // Name the manifest the error is in: the nearest `export const mN` above it.
    const upto = source.slice(0, d.start);
    const marks = [...upto.matchAll(/^export const m(\d+):/gm)];
    const idx = Number(marks.at(-1)?.[1] ?? -1);
    const { line } = sf.getLineAndCharacterOfPosition(d.start);
    problems.push(`${origin[idx] ?? "?"}: ${text} (near: ${source.split("\n")[line]?.trim()})`);
  }
  return problems;
}
