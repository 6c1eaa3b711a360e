/** Starting in Kubernetes mode: an unreachable API server is waited for; no kubeconfig outside a cluster is said plainly. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Backoff } from "../../common/backoff.js";
import { KubeApiError, loadKubeConfig, waitForApiServer } from "../../controller/sources/kube-client.js";
import { captureLogger } from "../helpers/control-log.js";

describe("Kubernetes mode start", () => {
  const saved = { HOME: process.env.HOME, KUBECONFIG: process.env.KUBECONFIG, HOST: process.env.KUBERNETES_SERVICE_HOST };
  afterEach(() => {
    for (const [k, v] of [
      ["HOME", saved.HOME],
      ["KUBECONFIG", saved.KUBECONFIG],
      ["KUBERNETES_SERVICE_HOST", saved.HOST],
    ] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  it("retries an unreachable API server with backoff and goes on at its first answer, even a refusal", async () => {
    let calls = 0;
    const client = {
      request: async () => {
        calls++;
        if (calls <= 2) throw new Error("connect ECONNREFUSED 127.0.0.1:6443");
        throw new KubeApiError(401, "Unauthorized", "GET /version: 401");
      },
    } as never;
    const cap = captureLogger("kube");
    await waitForApiServer(client, cap.log, undefined, new Backoff(1, 2));
    expect(calls).toBe(3);
    expect(cap.find(/API server is unreachable; retrying/)).toHaveLength(2);
  });

  it("stops waiting when the controller stops", async () => {
    const ctl = new AbortController();
    const client = {
      request: async () => {
        ctl.abort();
        throw new Error("connect ECONNREFUSED");
      },
    } as never;
    await expect(waitForApiServer(client, captureLogger("kube").log, ctl.signal, new Backoff(60_000, 60_000))).rejects.toThrow(
      /stopped while waiting/,
    );
  });

  it("--kubernetes with no kubeconfig outside a cluster says so, naming what is missing", async () => {
    const home = mkdtempSync(join(tmpdir(), "weft-home-"));
    try {
      process.env.HOME = home;
      delete process.env.KUBECONFIG;
      delete process.env.KUBERNETES_SERVICE_HOST;
      await expect(loadKubeConfig({})).rejects.toThrow(
        /no kubeconfig \(~\/\.kube\/config does not exist\) and not running in a cluster.*--kubeconfig FILE/,
      );
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});
