/**
 * An HTTPS fake of the Kubernetes API server with faithful list/watch semantics, for testing the
 * Kubernetes source without a cluster:
 *  - one resourceVersion counter for everything; lists carry it; limit/continue pagination;
 *  - watches replay history after the given resourceVersion, then stream; a resourceVersion older
 *    than the compaction horizon gets an ERROR event with a 410 Status (as etcd compaction does);
 *  - label selectors (=, ==, !=, in, notin, exists, !exists) on lists and watches, with the
 *    API server's transitions: an object that stops matching is sent as DELETED, one that
 *    starts matching as ADDED;
 *  - BOOKMARK events when asked (allowWatchBookmarks), timeoutSeconds, API group discovery,
 *    bearer-token auth, Secrets, Events and TokenReviews.
 * Only loopback: it listens on 127.0.0.1.
 */
import { randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { CertificateAuthority, readPrivateKey } from "../../controller/ca/ca.js";
import { generateRoot } from "../../controller/ca/root-store.js";

type Obj = {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    creationTimestamp?: string;
    generation?: number;
  };
  [k: string]: unknown;
};

interface Collection {
  group: string;
  kind: string;
  plural: string;
  namespaced: boolean;
  objects: Map<string, Obj>;
  history: { rv: number; type: "ADDED" | "MODIFIED" | "DELETED"; old?: Obj; obj: Obj }[];
}

interface WatchStream {
  coll: Collection;
  version: string;
  namespace?: string;
  selector: (labels: Record<string, string>) => boolean;
  res: ServerResponse;
  bookmarks: boolean;
  timer?: NodeJS.Timeout;
}

/** A label selector as a predicate; throws on syntax errors. */
export function parseSelector(text: string | null): (labels: Record<string, string>) => boolean {
  if (!text) return () => true;
  const terms = text
    .split(/,(?![^(]*\))/)
    .map((t) => t.trim())
    .filter(Boolean);
  const preds = terms.map((t) => {
    let m = /^([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)$/.exec(t);
    if (m) {
      const [, k, op, v] = m as unknown as [string, string, string, string];
      return op === "!=" ? (l: Record<string, string>) => l[k] !== v : (l: Record<string, string>) => l[k] === v;
    }
    m = /^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(t);
    if (m) {
      const [, k, op, list] = m as unknown as [string, string, string, string];
      const vals = new Set(list.split(",").map((s) => s.trim()));
      return op === "in"
        ? (l: Record<string, string>) => l[k] !== undefined && vals.has(l[k] as string)
        : (l: Record<string, string>) => l[k] === undefined || !vals.has(l[k] as string);
    }
    m = /^(!?)([\w./-]+)$/.exec(t);
    if (m) {
      const [, not, k] = m as unknown as [string, string, string];
      return not ? (l: Record<string, string>) => l[k] === undefined : (l: Record<string, string>) => l[k] !== undefined;
    }
    throw new Error(`unable to parse requirement: '${t}'`);
  });
  return (labels) => preds.every((p) => p(labels));
}

/** Fake Kubernetes API server. */
export class FakeApiServer {
  readonly token = `tok-${randomUUID()}`;
  private server: Server | undefined;
  private rv = 100;
  private horizon = 0;
  private readonly collections = new Map<string, Collection>();
  private readonly groups = new Map<string, string[]>();
  private readonly watches = new Set<WatchStream>();
  /** Every request, for assertions ("GET /api/v1/pods?resourceVersion=…"). */
  readonly requests: { method: string; path: string; query: URLSearchParams }[] = [];
  /** Events posted by the client. */
  readonly events: Obj[] = [];
  /** Secrets by "ns/name". */
  readonly secrets = new Map<string, Obj>();
  /** ConfigMaps by "ns/name" (get, create, update with resourceVersion checks). */
  readonly configMaps = new Map<string, Obj>();
  /** coordination.k8s.io Leases by "ns/name" (the same verbs). */
  readonly leases = new Map<string, Obj>();
  /** TokenReview answers by token. */
  readonly tokenReviews = new Map<string, object>();
  /** Collections ("group/plural") whose list and watch answer 403, as missing RBAC does. */
  readonly forbidden = new Set<string>();
  caPem = "";
  url = "";

  constructor() {
    this.groups.set("", ["v1"]);
    for (const [kind, plural, ns] of [
      ["Namespace", "namespaces", false],
      ["Node", "nodes", false],
      ["Pod", "pods", true],
      ["Service", "services", true],
    ] as const) {
      this.addCollection("", kind, plural, ns);
    }
    this.registerGroup("discovery.k8s.io", ["v1"]);
    this.addCollection("discovery.k8s.io", "EndpointSlice", "endpointslices", true);
  }

  private addCollection(group: string, kind: string, plural: string, namespaced: boolean): void {
    this.collections.set(`${group}/${plural}`, { group, kind, plural, namespaced, objects: new Map(), history: [] });
  }

  /** Makes an API group (and its kinds) exist, as installing CRDs does. */
  registerGroup(group: string, versions: string[], kinds: [kind: string, plural: string][] = []): void {
    this.groups.set(group, versions);
    for (const [kind, plural] of kinds) if (!this.collections.has(`${group}/${plural}`)) this.addCollection(group, kind, plural, true);
  }

  /** Starts listening on 127.0.0.1 with a self-signed certificate. */
  async start(): Promise<void> {
    const root = generateRoot("fake-apiserver.local");
    const ca = new CertificateAuthority(
      {
        origin: "fake",
        signingKey: readPrivateKey(root.keyPem, "fake"),
        signingCertPem: root.certPem,
        intermediatesPem: [],
        rootPem: root.certPem,
        extraRootsPem: [],
      },
      { trustDomain: "fake-apiserver.local", defaultTtlMs: 3600_000, maxTtlMs: 3600_000 },
    );
    const serving = ca.issueServing(["localhost"], ["127.0.0.1"], 3600_000);
    this.caPem = root.certPem;
    this.server = createServer({ cert: serving.certChainPem, key: serving.keyPem }, (req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server?.listen(0, "127.0.0.1", () => resolve()));
    this.url = `https://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Stops the server and ends every watch. */
  async stop(): Promise<void> {
    this.closeWatches();
    await new Promise<void>((resolve) => {
      this.server?.close(() => resolve());
      this.server?.closeAllConnections();
    });
  }

  /** Writes a kubeconfig for this server; returns its path. */
  writeKubeconfig(path: string, token = this.token): string {
    const cfg = {
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "fake", cluster: { server: this.url, "certificate-authority-data": Buffer.from(this.caPem).toString("base64") } }],
      users: [{ name: "fake", user: { token } }],
      contexts: [{ name: "fake", context: { cluster: "fake", user: "fake" } }],
      "current-context": "fake",
    };
    writeFileSync(path, JSON.stringify(cfg));
    return path;
  }

  private coll(group: string, plural: string): Collection {
    const c = this.collections.get(`${group}/${plural}`);
    if (!c) throw new Error(`fake apiserver: no collection ${group}/${plural}`);
    return c;
  }

  private key(o: Obj): string {
    return `${o.metadata.namespace ?? ""}/${o.metadata.name}`;
  }

  /** Creates or replaces an object (group "" for core); returns the stored copy. */
  apply(group: string, plural: string, obj: Obj): Obj {
    const c = this.coll(group, plural);
    const k = this.key(obj);
    const old = c.objects.get(k);
    const stored: Obj = structuredClone(obj);
    stored.metadata.uid = old?.metadata.uid ?? obj.metadata.uid ?? randomUUID();
    stored.metadata.creationTimestamp = old?.metadata.creationTimestamp ?? new Date().toISOString();
    stored.metadata.generation = (old?.metadata.generation ?? 0) + 1;
    stored.metadata.resourceVersion = String(++this.rv);
    c.objects.set(k, stored);
    this.record(c, old ? "MODIFIED" : "ADDED", stored, old);
    return stored;
  }

  /**
   * Deletes a CRD as the API server does: its objects are deleted (DELETED on watches, unless
   * `quietly`, as a client that was away would miss them), its watches end, and the collection (and
   * a group left with none) is no longer served.
   */
  uninstall(group: string, plural: string, quietly = false): void {
    const c = this.coll(group, plural);
    if (!quietly) for (const o of [...c.objects.values()]) this.delete(group, plural, o.metadata.namespace, o.metadata.name);
    for (const w of [...this.watches]) {
      if (w.coll !== c) continue;
      if (w.timer) clearTimeout(w.timer);
      w.res.end();
      this.watches.delete(w);
    }
    this.collections.delete(`${group}/${plural}`);
    if (![...this.collections.values()].some((x) => x.group === group)) this.groups.delete(group);
  }

  /** The objects of a collection as stored now. */
  objects(group: string, plural: string): Obj[] {
    return [...this.coll(group, plural).objects.values()];
  }

  /** Deletes an object; returns false when absent. */
  delete(group: string, plural: string, namespace: string | undefined, name: string): boolean {
    const c = this.coll(group, plural);
    const k = `${namespace ?? ""}/${name}`;
    const old = c.objects.get(k);
    if (!old) return false;
    c.objects.delete(k);
    const gone = structuredClone(old);
    gone.metadata.resourceVersion = String(++this.rv);
    this.record(c, "DELETED", gone, old);
    return true;
  }

  /** Forgets history up to now: watches from an older resourceVersion get 410 Gone. */
  compact(): void {
    this.horizon = this.rv;
    for (const c of this.collections.values()) c.history = [];
  }

  /** Ends every watch stream (as a server-side timeout does). */
  closeWatches(): void {
    for (const w of this.watches) {
      if (w.timer) clearTimeout(w.timer);
      w.res.end();
    }
    this.watches.clear();
  }

  /** Sends a BOOKMARK with the current resourceVersion on every watch that allows them. */
  bookmark(): number {
    let n = 0;
    for (const w of this.watches) {
      if (!w.bookmarks) continue;
      this.send(w, "BOOKMARK", { metadata: { name: "", resourceVersion: String(this.rv) } });
      n++;
    }
    return n;
  }

  /** The current resourceVersion. */
  get resourceVersion(): number {
    return this.rv;
  }

  /** Open watches (for tests to wait on). */
  get openWatches(): number {
    return this.watches.size;
  }

  private record(c: Collection, type: "ADDED" | "MODIFIED" | "DELETED", obj: Obj, old?: Obj): void {
    const entry = { rv: this.rv, type, obj, ...(old ? { old } : {}) };
    c.history.push(entry);
    for (const w of this.watches) if (w.coll === c) this.deliver(w, entry);
  }

  /** The API server's selector transitions for one change. */
  private deliver(w: WatchStream, e: Collection["history"][number]): void {
    if (w.namespace && e.obj.metadata.namespace !== w.namespace) return;
    const now = w.selector(e.obj.metadata.labels ?? {});
    const before = e.old ? w.selector(e.old.metadata.labels ?? {}) : false;
    if (e.type === "DELETED") {
      if (before) this.send(w, "DELETED", e.obj);
    } else if (e.type === "ADDED") {
      if (now) this.send(w, "ADDED", e.obj);
    } else if (now && before) this.send(w, "MODIFIED", e.obj);
    else if (now) this.send(w, "ADDED", e.obj);
    else if (before) this.send(w, "DELETED", e.obj);
  }

  private send(w: WatchStream, type: string, obj: object): void {
    const c = w.coll;
    // Objects are served at the version the watch asked for, as the API server converts them.
    const out = { ...obj, apiVersion: c.group ? `${c.group}/${w.version}` : "v1", kind: c.kind };
    w.res.write(`${JSON.stringify({ type, object: out })}\n`);
  }

  /** Status patches received, in order ("ns/name" and the patch), for assertions. */
  readonly statusPatches: { key: string; contentType: string; patch: Obj }[] = [];

  /** The status subresource: a JSON merge patch of .status (a CRD with `subresources: status`). */
  private async patchStatus(
    req: IncomingMessage,
    res: ServerResponse,
    c: Collection,
    namespace: string | undefined,
    name: string,
  ): Promise<void> {
    const contentType = req.headers["content-type"] ?? "";
    if (contentType !== "application/merge-patch+json")
      return this.status(
        res,
        415,
        "UnsupportedMediaType",
        `the body of the request was in an unknown format - accepted media types include: application/merge-patch+json`,
      );
    const k = `${namespace ?? ""}/${name}`;
    const old = c.objects.get(k);
    if (!old) return this.status(res, 404, "NotFound", `${c.plural}.${c.group} "${name}" not found`);
    const patch = await this.body(req);
    this.statusPatches.push({ key: k, contentType, patch });
    const next = structuredClone(old);
    next.status = {
      ...((old.status as Record<string, unknown> | undefined) ?? {}),
      ...((patch.status as Record<string, unknown> | undefined) ?? {}),
    };
    next.metadata.resourceVersion = String(++this.rv);
    c.objects.set(k, next);
    this.record(c, "MODIFIED", next, old);
    return this.json(res, 200, next);
  }

  private json(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  }

  private status(res: ServerResponse, code: number, reason: string, message: string): void {
    this.json(res, code, { kind: "Status", apiVersion: "v1", status: "Failure", reason, message, code });
  }

  private async body(req: IncomingMessage): Promise<Obj> {
    let s = "";
    for await (const c of req) s += c;
    return JSON.parse(s) as Obj;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "https://fake");
    this.requests.push({ method: req.method ?? "GET", path: url.pathname, query: url.searchParams });
    if (req.headers.authorization !== `Bearer ${this.token}`) {
      this.status(res, 401, "Unauthorized", "Unauthorized");
      return;
    }
    const p = url.pathname.split("/").filter(Boolean);
    try {
      if (p[0] === "apis" && p.length === 2) {
        const versions = this.groups.get(p[1] as string);
        if (!versions) return this.status(res, 404, "NotFound", `the server could not find the requested resource`);
        return this.json(res, 200, {
          kind: "APIGroup",
          apiVersion: "v1",
          name: p[1],
          versions: versions.map((v) => ({ groupVersion: `${p[1]}/${v}`, version: v })),
          preferredVersion: { groupVersion: `${p[1]}/${versions[0]}`, version: versions[0] },
        });
      }
      if (req.method === "POST" && url.pathname === "/apis/authentication.k8s.io/v1/tokenreviews") {
        const tr = await this.body(req);
        const spec = (tr.spec ?? {}) as { token?: string; audiences?: string[] };
        const known = this.tokenReviews.get(spec.token ?? "");
        // Like the API server: a valid token answers with the requested audiences it carries
        // (all of them, unless the registered review names its own).
        return this.json(res, 201, {
          ...tr,
          status: known ? { audiences: spec.audiences ?? [], ...known } : { authenticated: false, error: "invalid bearer token" },
        });
      }
      if (p[0] === "apis" && p[1] === "coordination.k8s.io" && p[2] === "v1" && p[3] === "namespaces" && p[5] === "leases")
        return this.namedObject(this.leases, "leases", req, res, p[4] as string, p[6]);
      // /api/v1/[namespaces/<ns>/]<plural>[/<name>]  or  /apis/<g>/<v>/[namespaces/<ns>/]<plural>[/<name>]
      if (p[0] === "apis" && p.length === 3 && this.groups.get(p[1] as string)?.includes(p[2] as string)) {
        // APIResourceList: the kinds this group version serves (a CRD not installed is absent).
        const resources = [...this.collections.values()]
          .filter((c) => c.group === p[1])
          .map((c) => ({ name: c.plural, kind: c.kind, namespaced: c.namespaced, verbs: ["get", "list", "watch"] }));
        return this.json(res, 200, { kind: "APIResourceList", apiVersion: "v1", groupVersion: `${p[1]}/${p[2]}`, resources });
      }
      let group = "";
      let version = "v1";
      let rest: string[];
      if (p[0] === "api" && p[1] === "v1") rest = p.slice(2);
      else if (p[0] === "apis" && p.length >= 4) {
        group = p[1] as string;
        version = p[2] as string;
        rest = p.slice(3);
        if (!this.groups.get(group)?.includes(version))
          return this.status(res, 404, "NotFound", "the server could not find the requested resource");
      } else return this.status(res, 404, "NotFound", "the server could not find the requested resource");
      let namespace: string | undefined;
      if (rest[0] === "namespaces" && rest.length >= 3) {
        namespace = rest[1];
        rest = rest.slice(2);
      }
      const [plural, name] = rest as [string, string | undefined];
      if (group === "" && plural === "secrets") return this.secret(req, res, namespace as string, name);
      if (group === "" && plural === "configmaps")
        return this.namedObject(this.configMaps, "configmaps", req, res, namespace as string, name);
      if (group === "" && plural === "events" && req.method === "POST" && !name) {
        const ev = await this.body(req);
        ev.metadata.name ??= `${ev.metadata.name ?? "ev"}${randomUUID().slice(0, 8)}`;
        const same = (e: Obj) => e.metadata.name === ev.metadata.name && e.metadata.namespace === namespace;
        if (this.events.some(same)) return this.status(res, 409, "AlreadyExists", `events "${ev.metadata.name}" already exists`);
        ev.metadata.namespace = namespace;
        ev.metadata.resourceVersion = String(++this.rv);
        this.events.push(ev);
        return this.json(res, 201, ev);
      }
      if (group === "" && plural === "events" && name && (req.method === "GET" || req.method === "PUT")) {
        const i = this.events.findIndex((e) => e.metadata.name === name && e.metadata.namespace === namespace);
        if (i < 0) return this.status(res, 404, "NotFound", `events "${name}" not found`);
        if (req.method === "GET") return this.json(res, 200, this.events[i]);
        const ev = await this.body(req);
        if (ev.metadata.resourceVersion !== this.events[i]?.metadata.resourceVersion)
          return this.status(res, 409, "Conflict", `events "${name}": the object has been modified`);
        ev.metadata.resourceVersion = String(++this.rv);
        this.events[i] = ev;
        return this.json(res, 200, ev);
      }
      const c = this.collections.get(`${group}/${plural}`);
      if (!c) return this.status(res, 404, "NotFound", `${plural} not served`);
      if (name && rest[2] === "status" && req.method === "PATCH") return this.patchStatus(req, res, c, namespace, name);
      if (this.forbidden.has(`${group}/${plural}`)) {
        // A watch already open keeps running: RBAC is checked when a request starts.
        const who = 'User "system:serviceaccount:weft-system:weft-controller"';
        return this.status(
          res,
          403,
          "Forbidden",
          `${plural}.${group} is forbidden: ${who} cannot list resource "${plural}" in API group "${group}"`,
        );
      }
      let selector: (l: Record<string, string>) => boolean;
      try {
        selector = parseSelector(url.searchParams.get("labelSelector"));
      } catch (e) {
        return this.status(res, 400, "BadRequest", (e as Error).message);
      }
      if (url.searchParams.get("watch") === "true") return this.watch(req, res, c, version, namespace, selector, url.searchParams);
      return this.list(res, c, version, namespace, selector, url.searchParams);
    } catch (e) {
      this.status(res, 500, "InternalError", (e as Error).message);
    }
  }

  private list(
    res: ServerResponse,
    c: Collection,
    version: string,
    namespace: string | undefined,
    selector: (l: Record<string, string>) => boolean,
    q: URLSearchParams,
  ): void {
    const all = [...c.objects.values()]
      .filter((o) => (!namespace || o.metadata.namespace === namespace) && selector(o.metadata.labels ?? {}))
      .sort((a, b) => this.key(a).localeCompare(this.key(b)));
    const limit = Number(q.get("limit") ?? "0");
    let offset = 0;
    let listRv = this.rv;
    const cont = q.get("continue");
    if (cont) {
      const t = JSON.parse(Buffer.from(cont, "base64").toString()) as { offset: number; rv: number };
      if (t.rv < this.horizon) {
        this.status(res, 410, "Expired", "The provided continue parameter is too old");
        return;
      }
      offset = t.offset;
      listRv = t.rv;
    }
    const items = limit > 0 ? all.slice(offset, offset + limit) : all.slice(offset);
    const more = limit > 0 && offset + limit < all.length;
    const metadata: Record<string, string> = { resourceVersion: String(listRv) };
    if (more) metadata.continue = Buffer.from(JSON.stringify({ offset: offset + limit, rv: listRv })).toString("base64");
    // Real lists leave kind/apiVersion out of items.
    const apiVersion = c.group ? `${c.group}/${version}` : "v1";
    this.json(res, 200, { kind: `${c.kind}List`, apiVersion, metadata, items: items.map(({ kind: _k, apiVersion: _a, ...rest }) => rest) });
  }

  private watch(
    req: IncomingMessage,
    res: ServerResponse,
    c: Collection,
    version: string,
    namespace: string | undefined,
    selector: (l: Record<string, string>) => boolean,
    q: URLSearchParams,
  ): void {
    res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
    res.flushHeaders(); // the API server answers a watch at once, before any event
    const w: WatchStream = {
      coll: c,
      version,
      selector,
      res,
      bookmarks: q.get("allowWatchBookmarks") === "true",
      ...(namespace ? { namespace } : {}),
    };
    const from = q.get("resourceVersion") ?? "";
    if (from !== "" && from !== "0" && Number(from) < this.horizon) {
      res.end(
        `${JSON.stringify({ type: "ERROR", object: { kind: "Status", apiVersion: "v1", status: "Failure", reason: "Expired", code: 410, message: `too old resource version: ${from} (${this.horizon})` } })}\n`,
      );
      return;
    }
    this.watches.add(w);
    if (from === "" || from === "0") {
      for (const o of c.objects.values())
        if ((!namespace || o.metadata.namespace === namespace) && selector(o.metadata.labels ?? {})) this.send(w, "ADDED", o);
    } else {
      for (const e of c.history) if (e.rv > Number(from)) this.deliver(w, e);
    }
    const timeout = Number(q.get("timeoutSeconds") ?? "0");
    if (timeout > 0) {
      w.timer = setTimeout(() => {
        this.watches.delete(w);
        res.end();
      }, timeout * 1000);
    }
    req.on("close", () => {
      if (w.timer) clearTimeout(w.timer);
      this.watches.delete(w);
    });
  }

  private async secret(req: IncomingMessage, res: ServerResponse, namespace: string, name: string | undefined): Promise<void> {
    if (req.method === "GET" && name) {
      const s = this.secrets.get(`${namespace}/${name}`);
      if (!s) return this.status(res, 404, "NotFound", `secrets "${name}" not found`);
      return this.json(res, 200, s);
    }
    if (req.method === "POST" && !name) {
      const s = await this.body(req);
      const k = `${namespace}/${s.metadata.name}`;
      if (this.secrets.has(k)) return this.status(res, 409, "AlreadyExists", `secrets "${s.metadata.name}" already exists`);
      s.metadata.resourceVersion = String(++this.rv);
      this.secrets.set(k, s);
      return this.json(res, 201, s);
    }
    this.status(res, 405, "MethodNotAllowed", "not supported by the fake");
  }

  /** get, create and update (checking resourceVersion) of one kind of namespaced object. */
  private async namedObject(
    store: Map<string, Obj>,
    plural: string,
    req: IncomingMessage,
    res: ServerResponse,
    namespace: string,
    name: string | undefined,
  ): Promise<void> {
    const current = name ? store.get(`${namespace}/${name}`) : undefined;
    if (req.method === "GET" && name) {
      if (!current) return this.status(res, 404, "NotFound", `${plural} "${name}" not found`);
      return this.json(res, 200, current);
    }
    if ((req.method === "POST" && !name) || (req.method === "PUT" && name)) {
      const c = await this.body(req);
      const k = `${namespace}/${c.metadata.name}`;
      const existing = store.get(k);
      if (req.method === "POST" && existing) return this.status(res, 409, "AlreadyExists", `${plural} "${c.metadata.name}" already exists`);
      if (req.method === "PUT" && !existing) return this.status(res, 404, "NotFound", `${plural} "${name}" not found`);
      if (req.method === "PUT" && c.metadata.resourceVersion !== existing?.metadata.resourceVersion)
        return this.status(res, 409, "Conflict", `${plural} "${name}": the object has been modified`);
      c.metadata.resourceVersion = String(++this.rv);
      store.set(k, c);
      return this.json(res, req.method === "POST" ? 201 : 200, c);
    }
    this.status(res, 405, "MethodNotAllowed", "not supported by the fake");
  }
}
