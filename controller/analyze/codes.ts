/**
 * The analyzer's message codes. Stable: a code is never renamed or reused (scripts and docs link
 * to them); each has a page in docs/analyze/<code>.md saying what it means and how to fix it.
 */

/** How bad a finding is: errors make `weft analyze` exit non-zero. */
export type Severity = "error" | "warning" | "info";

/** One kind of finding. */
export interface MessageCode {
  code: string;
  /** Short CamelCase name, as istioctl's analyzers have. */
  name: string;
  severity: Severity;
  summary: string;
}

const list = [
  {
    code: "WFT0001",
    name: "InvalidObject",
    severity: "error",
    summary: "an object weft cannot translate (skipped or enforced fail-closed)",
  },
  { code: "WFT0002", name: "UnsupportedField", severity: "warning", summary: "part of an object weft does not support and ignores" },
  { code: "WFT0003", name: "UnreadableInput", severity: "error", summary: "a file that cannot be read or parsed" },
  { code: "WFT0004", name: "IgnoredKind", severity: "info", summary: "an object of a kind weft does not read" },
  { code: "WFT0101", name: "UnknownSubset", severity: "error", summary: "a route names a subset no DestinationRule defines" },
  { code: "WFT0102", name: "HostNotFound", severity: "error", summary: "a route or DestinationRule host names no Service" },
  { code: "WFT0103", name: "ConflictingRoutes", severity: "error", summary: "two route objects for one host" },
  { code: "WFT0104", name: "WeightsNot100", severity: "error", summary: "a route's destination weights do not add up to 100" },
  { code: "WFT0105", name: "PortWithoutProtocol", severity: "warning", summary: "an HTTP route to a port that declares no protocol" },
  { code: "WFT0106", name: "DestinationPortNotFound", severity: "error", summary: "a route sends to a port the Service does not have" },
  { code: "WFT0107", name: "ConflictingDestinationRules", severity: "warning", summary: "two DestinationRules for one host" },
  { code: "WFT0108", name: "SubsetSelectsNoPod", severity: "warning", summary: "a subset's labels match none of the Service's pods" },
  { code: "WFT0109", name: "DuplicateSubset", severity: "error", summary: "a DestinationRule defines one subset name twice" },
  { code: "WFT0110", name: "GatewayOnlyRoute", severity: "warning", summary: "a VirtualService bound only to gateways (weft has none)" },
  { code: "WFT0201", name: "PolicySelectsNoWorkload", severity: "warning", summary: "a policy's selector matches no pod" },
  { code: "WFT0202", name: "StrictWithPlaintextClients", severity: "warning", summary: "STRICT mTLS while non-mesh pods may still call" },
  {
    code: "WFT0203",
    name: "RequestPrincipalsWithoutAuthentication",
    severity: "error",
    summary: "requestPrincipals with no RequestAuthentication",
  },
  {
    code: "WFT0204",
    name: "PolicyOutsideMesh",
    severity: "warning",
    summary: "a policy that selects only pods outside the mesh (not enforced)",
  },
  { code: "WFT0205", name: "UnknownSourceNamespace", severity: "warning", summary: "a policy names a namespace that does not exist" },
  { code: "WFT0206", name: "ForeignTrustDomain", severity: "warning", summary: "a principal in another trust domain (never matches)" },
  { code: "WFT0301", name: "NodeWithoutAgent", severity: "error", summary: "an enrolled pod on a node where no agent runs" },
  { code: "WFT0302", name: "NamespaceNotFound", severity: "warning", summary: "an object in a namespace that does not exist" },
] as const satisfies readonly MessageCode[];

/** Every code, in order. */
export const MESSAGE_CODES: readonly MessageCode[] = list;

/** A code's name. */
export type CodeName = (typeof list)[number]["name"];

/** The code of a name ("UnknownSubset" → its entry). */
export function codeOf(name: CodeName): MessageCode {
  return list.find((c) => c.name === name) as MessageCode;
}
