/**
 * The small cluster the controller tests run against the fake API server: namespace `shop`
 * enrolled, node n1 with its agent pod (hostNetwork, service account weft-agent) and pod `web`,
 * the Istio security kinds installed, and a TokenReview answer for the agent's token.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { AgentApp } from "../../agent/app.js";
import { agentConfig } from "../../agent/config.js";
import type { Logger } from "../../common/log.js";
import type { FakeApiServer } from "./fake-apiserver.js";

/** The token the agent of n1 presents ("agent-n1-token"). */
export const AGENT_TOKEN = "agent-n1-token";

/** What TokenReview answers for a token of the agent pod `pod` (uid `uid`). */
export function agentUser(pod: string, uid: string, audiences = ["weft"]): object {
  return {
    authenticated: true,
    user: {
      username: "system:serviceaccount:weft-system:weft-agent",
      extra: { "authentication.kubernetes.io/pod-name": [pod], "authentication.kubernetes.io/pod-uid": [uid] },
    },
    audiences,
  };
}

/** Seeds the shop cluster; returns the agent pod's uid. */
export function seedShop(api: FakeApiServer, securityKinds: [kind: string, plural: string][] = []): { agentPodUid: string } {
  api.registerGroup(
    "security.istio.io",
    ["v1"],
    [["AuthorizationPolicy", "authorizationpolicies"], ["PeerAuthentication", "peerauthentications"], ...securityKinds],
  );
  api.apply("", "namespaces", { metadata: { name: "shop", labels: { "weft.dev/mesh": "enabled" } } });
  api.apply("", "nodes", { metadata: { name: "n1" }, status: { addresses: [{ type: "InternalIP", address: "10.250.0.11" }] } });
  const agentPod = api.apply("", "pods", {
    metadata: { name: "weft-agent-x1", namespace: "weft-system" },
    spec: { nodeName: "n1", hostNetwork: true, serviceAccountName: "weft-agent" },
    status: { podIP: "10.250.0.11" },
  });
  api.apply("", "pods", {
    metadata: { name: "web", namespace: "shop" },
    spec: { nodeName: "n1", serviceAccountName: "web" },
    status: { podIP: "10.244.1.2", hostIP: "10.250.0.11", conditions: [{ type: "Ready", status: "True" }] },
  });
  const agentPodUid = agentPod.metadata.uid as string;
  api.tokenReviews.set(AGENT_TOKEN, agentUser("weft-agent-x1", agentPodUid));
  return { agentPodUid };
}

/**
 * An agent for n1 (control plane only) talking to the controller on port, trusting caPem and
 * presenting token (written to tokenFile); not started.
 */
export function shopAgent(
  dir: string,
  port: number,
  caPem: string,
  log: Logger,
  token = AGENT_TOKEN,
  tokenFile = join(dir, "token"),
): AgentApp {
  writeFileSync(join(dir, "ca.pem"), caPem);
  writeFileSync(tokenFile, `${token}\n`);
  return new AgentApp(
    agentConfig(
      {
        node: "n1",
        controller: `127.0.0.1:${port}`,
        tokenFile,
        caFile: join(dir, "ca.pem"),
        adminAddress: "off",
        adminSocket: "off",
      },
      {},
    ),
    log,
  );
}
