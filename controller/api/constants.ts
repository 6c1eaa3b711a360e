/** Ports and marks every part of weft agrees on (same meaning as Istio ambient's). */

/** Redirected outbound pod connections arrive here. */
export const PORT_OUTBOUND = 15001;
/** Plaintext inbound capture (PERMISSIVE, non-mesh clients). */
export const PORT_INBOUND_PLAINTEXT = 15006;
/** HBONE: mTLS + HTTP/2 CONNECT between nodes. */
export const PORT_HBONE = 15008;
/** Admin API, 127.0.0.1 only. */
export const PORT_ADMIN = 15000;
/** Prometheus metrics. */
export const PORT_METRICS = 15020;
/** Readiness (/healthz/ready). */
export const PORT_READINESS = 15021;
/** Controller: gRPC xDS + CA (as istiod's 15012). */
export const PORT_CONTROLLER = 15012;

/**
 * SO_MARK the proxy's sockets carry (set by the sock_create hook on the proxy's cgroup). The STRICT
 * guard lets marked SYNs through to enrolled pods. Distinct from Istio's 0x539 so both can coexist.
 */
export const PROXY_MARK = 0x7765;
/**
 * SO_MARK of the proxy's passthrough dials (destinations outside the mesh): not the proxy mark, so
 * the STRICT guard and the node's probe rule never treat them as mesh or kubelet traffic.
 */
export const PASSTHROUGH_MARK = 0x7764;
