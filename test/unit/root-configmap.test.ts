/** The agents' root ConfigMap: created, left alone when right, updated with the resourceVersion, races retried. */
import { describe, expect, it } from "vitest";
import { publishRootConfigMap } from "../../controller/ca/root-configmap.js";
import { KubeApiError } from "../../controller/sources/kube-client.js";

type Cm = { metadata: { name: string; resourceVersion?: string }; data?: Record<string, string> };

/** An in-memory API for one ConfigMap; `interfere` runs before each write (another replica). */
function fakeApi(interfere: (store: { cm: Cm | null; rv: number }) => void = () => {}) {
  const store = { cm: null as Cm | null, rv: 0 };
  const calls: string[] = [];
  const request = async <T>(method: string, _path: string, body?: unknown): Promise<T> => {
    calls.push(method);
    if (method === "GET") {
      if (!store.cm) throw new KubeApiError(404, "NotFound", "not found");
      return structuredClone(store.cm) as T;
    }
    interfere(store);
    const b = structuredClone(body) as Cm;
    if (method === "POST" && store.cm) throw new KubeApiError(409, "AlreadyExists", "exists");
    if (method === "PUT" && b.metadata.resourceVersion !== store.cm?.metadata.resourceVersion)
      throw new KubeApiError(409, "Conflict", "modified");
    b.metadata.resourceVersion = String(++store.rv);
    store.cm = b;
    return b as T;
  };
  return { store, calls, client: { request } as never };
}

describe("publishRootConfigMap", () => {
  it("creates, leaves alone when equal, updates when the roots change", async () => {
    const api = fakeApi();
    expect(await publishRootConfigMap(api.client, "weft-system", "A")).toBe("created");
    expect(await publishRootConfigMap(api.client, "weft-system", "A")).toBe("unchanged");
    expect(await publishRootConfigMap(api.client, "weft-system", "AB")).toBe("updated");
    expect(api.store.cm?.data).toEqual({ "root-cert.pem": "AB" });
    expect(api.store.cm?.metadata.name).toBe("weft-root-cert");
  });

  it("a lost create race reads the winner's and finds it equal", async () => {
    let once = true;
    const api = fakeApi((s) => {
      if (once) s.cm = { metadata: { name: "weft-root-cert", resourceVersion: String(++s.rv) }, data: { "root-cert.pem": "A" } };
      once = false;
    });
    expect(await publishRootConfigMap(api.client, "weft-system", "A")).toBe("unchanged");
    expect(api.calls).toEqual(["GET", "POST", "GET"]);
  });

  it("an error other than a conflict names the ConfigMap", async () => {
    const client = {
      request: async () => {
        throw new KubeApiError(403, "Forbidden", "configmaps is forbidden");
      },
    } as never;
    await expect(publishRootConfigMap(client, "weft-system", "A")).rejects.toThrow(
      /configmap weft-system\/weft-root-cert: configmaps is forbidden/,
    );
  });
});
