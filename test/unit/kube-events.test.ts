/** Events are deduplicated: the same problem seen again (even by a restarted controller) bumps count. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubeClient, loadKubeConfig } from "../../controller/sources/kube-client.js";
import { KubeEventSink } from "../../controller/sources/kube-events.js";
import type { Diagnostic } from "../../controller/translate/types.js";
import { captureLogger } from "../helpers/control-log.js";
import { FakeApiServer } from "../helpers/fake-apiserver.js";

describe("Kubernetes Events", () => {
  const dir = mkdtempSync(join(tmpdir(), "weft-events-"));
  const api = new FakeApiServer();
  let client: KubeClient;
  const d = (message: string): Diagnostic => ({
    ref: { kind: "AuthorizationPolicy", apiVersion: "security.istio.io/v1", namespace: "shop", name: "bad", uid: "u1" },
    severity: "error",
    message,
  });

  beforeAll(async () => {
    await api.start();
    client = new KubeClient(await loadKubeConfig({ kubeconfig: api.writeKubeconfig(join(dir, "kubeconfig")) }));
  });
  afterAll(async () => {
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("counts a repeated problem on one Event, across sink instances (controller restarts); a new message is a new Event", async () => {
    for (let i = 0; i < 3; i++) {
      const sink = new KubeEventSink(client, captureLogger("events").log, `replica-${i}`);
      sink.emit(d("invalid: spec.action"));
      await sink.flushed();
      expect(sink.sent).toBe(1);
    }
    expect(api.events).toHaveLength(1);
    expect(api.events[0]).toMatchObject({
      count: 3,
      reason: "InvalidConfig",
      reportingInstance: "replica-2",
      involvedObject: { name: "bad", uid: "u1" },
    });
    const sink = new KubeEventSink(client, captureLogger("events").log);
    sink.emit(d("invalid: spec.rules[0]"));
    await sink.flushed();
    expect(api.events).toHaveLength(2);
  });

  it("a replica that does not lead leaves Events to the leader", async () => {
    const sink = new KubeEventSink(client, captureLogger("events").log);
    sink.gate = () => false;
    const before = api.events.length;
    sink.emit(d("invalid: spec.selector"));
    await sink.flushed();
    expect(sink.leftToLeader).toBe(1);
    expect(api.events).toHaveLength(before);
  });
});
