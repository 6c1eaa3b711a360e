/**
 * Until the L7 data path lands, routes (VirtualService, HTTPRoute) and DestinationRules are
 * translated and sent to agents, but the proxy does not apply them: traffic goes where L4 sends
 * it. Both the controller's log and `weft policies` say so from this one place; when the L7 work
 * applies them, delete this file and its two users (controller/controller.ts, agent/cli/inventory.ts).
 */

/** The kinds translated but not yet applied. */
export const NOT_APPLIED_KINDS: readonly string[] = ["VirtualService", "HTTPRoute", "DestinationRule"];

/** The plain statement, for logs and the CLI. */
export const NOT_APPLIED_NOTE =
  "routes (VirtualService, HTTPRoute) and DestinationRules are translated and sent to agents but NOT applied yet: the proxy is L4 only";
