/** Every measured path, by name; benchmarks build fresh instances from here. */
import type { BenchVariant, VariantName } from "../lib/variant.js";
import { directVariant } from "./direct.js";
import { haproxyVariant } from "./haproxy.js";
import { weftVariant } from "./weft.js";

/** Factories of the variants, in report order. */
export const VARIANTS: Readonly<Record<VariantName, () => BenchVariant>> = {
  direct: () => directVariant(2),
  "direct-same-node": () => directVariant(1),
  haproxy: () => haproxyVariant("tcp"),
  "haproxy-http": () => haproxyVariant("http"),
  weft: () => weftVariant("l4"),
  "weft-same-node": () => weftVariant("l4", 1),
  "weft-l7": () => weftVariant("l7"),
  "weft-l7-authz1": () => weftVariant("l7-authz1"),
  "weft-l7-authz": () => weftVariant("l7-authz"),
};
