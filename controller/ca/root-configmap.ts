/**
 * Kubernetes mode: the roots agents must trust, published as a ConfigMap (`root-cert.pem`) that the
 * agent DaemonSet mounts as its `--ca-file`. Agents get the certificate only: the CA key stays in
 * the controller's Secret, which no node can read. Every replica publishes the same content from
 * the same Secret, so the writes agree; a replica that loses a create race reads the winner's.
 */
import { errorMessage } from "../../common/errors.js";
import { KubeApiError, type KubeClient } from "../sources/kube-client.js";

/** The ConfigMap the install mounts into the agents (daemonset/agent.yaml). */
export const ROOT_CONFIGMAP = "weft-root-cert";

interface ConfigMap {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace: string; resourceVersion?: string; labels?: Record<string, string> };
  data?: Record<string, string>;
}

/** What happened: the ConfigMap was already right, created, or updated. */
export type PublishResult = "unchanged" | "created" | "updated";

/** Makes namespace/name hold exactly rootsPem as root-cert.pem; throws naming the ConfigMap. */
export async function publishRootConfigMap(
  client: Pick<KubeClient, "request">,
  namespace: string,
  rootsPem: string,
  name = ROOT_CONFIGMAP,
): Promise<PublishResult> {
  const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/configmaps/${encodeURIComponent(name)}`;
  const want: ConfigMap = {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name, namespace, labels: { "app.kubernetes.io/part-of": "weft" } },
    data: { "root-cert.pem": rootsPem },
  };
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      let current: ConfigMap | null = null;
      try {
        current = await client.request<ConfigMap>("GET", path);
      } catch (e) {
        if (!(e instanceof KubeApiError && e.statusCode === 404)) throw e;
      }
      if (current?.data?.["root-cert.pem"] === rootsPem) return "unchanged";
      try {
        if (!current) {
          await client.request("POST", `/api/v1/namespaces/${encodeURIComponent(namespace)}/configmaps`, want);
          return "created";
        }
        const body = { ...want, metadata: { ...want.metadata, resourceVersion: current.metadata.resourceVersion } };
        await client.request("PUT", path, body);
        return "updated";
      } catch (e) {
        // Another replica wrote first (409 on create or on a stale resourceVersion): look again.
        if (!(e instanceof KubeApiError && e.statusCode === 409)) throw e;
      }
    }
    throw new Error("kept conflicting with another writer");
  } catch (e) {
    throw new Error(`configmap ${namespace}/${name}: ${errorMessage(e)}`);
  }
}
