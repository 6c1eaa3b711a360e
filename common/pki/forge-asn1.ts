/**
 * node-forge's ASN.1 and byte-string helpers, loaded alone. The package index loads every cipher,
 * TLS and PKI module (~12 MB of RSS per process); weft builds certificates and CSRs with asn1 only
 * and does every key operation in Node's crypto, so only these two modules are loaded.
 */
import { createRequire } from "node:module";
import type forge from "node-forge";

const require = createRequire(import.meta.url);

/** forge.asn1 */
export const asn1 = require("node-forge/lib/asn1") as typeof forge.asn1;
/** forge.util */
export const util = require("node-forge/lib/util") as typeof forge.util;
/** A forge ASN.1 node. */
export type Asn1 = forge.asn1.Asn1;
