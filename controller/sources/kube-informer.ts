/**
 * One informer per kind on @kubernetes/client-node's ListWatch, completed where it falls short:
 * it asks for bookmarks (so a reconnect resumes from a recent resourceVersion instead of
 * relisting), bounds each watch with timeoutSeconds (a silently dead connection cannot hang it),
 * lists in pages with the list's resourceVersion, and restarts with jittered backoff after
 * errors (ListWatch itself stops). ListWatch keeps the resourceVersion, relists on 410 Gone and
 * emits deletes for objects that vanished across a relist.
 */
import type { KubernetesListObject, KubernetesObject } from "@kubernetes/client-node";
import type { Logger } from "../../common/log.js";
import type { KubeObject } from "../api/kube-types.js";
import type { KubeClient } from "./kube-client.js";

/** What an informer reports to its owner. */
export interface InformerHandlers {
  upsert(obj: KubeObject): void;
  remove(obj: KubeObject): void;
  /**
   * The collection answered 404 (its CRD was deleted?): the owner decides, by discovery, whether
   * the kind is gone; the informer does not retry on its own.
   */
  notServed?(): void;
}

/** Options of one informer. */
export interface InformerOptions {
  client: KubeClient;
  /** Collection path, e.g. "/api/v1/pods" or "/apis/networking.istio.io/v1/virtualservices". */
  path: string;
  /** apiVersion and kind to stamp on list items (lists omit them). */
  apiVersion: string;
  kind: string;
  labelSelector?: string;
  log: Logger;
  /** Server-side watch timeout range in seconds (default 300–600, like client-go). */
  watchTimeoutSeconds?: [number, number];
  pageSize?: number;
}

interface ListPage {
  metadata?: { resourceVersion?: string; continue?: string };
  items?: KubeObject[];
}

/** A running informer. */
export class Informer {
  private listWatch: { start(): Promise<void>; stop(): Promise<void>; latestResourceVersion(): string } | undefined;
  private stopped = false;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private syncedResolve: (() => void) | undefined;
  /** Resolves once the first list has been delivered. */
  readonly synced: Promise<void>;
  /** Resolves once the first list has been delivered or the API server refused it (403). */
  readonly settled: Promise<void>;
  private settledResolve: (() => void) | undefined;
  /** Number of full lists done (1 + relists after 410 Gone or errors). */
  lists = 0;
  /**
   * The API server's refusal since the last good answer (403: installed, not readable), or
   * undefined. Objects already delivered stay in the store meanwhile: a refusal is not "none".
   */
  refusal: { statusCode: number; message: string } | undefined;

  constructor(
    private readonly opts: InformerOptions,
    private readonly handlers: InformerHandlers,
  ) {
    this.synced = new Promise((r) => {
      this.syncedResolve = r;
    });
    this.settled = new Promise((r) => {
      this.settledResolve = r;
    });
    void this.synced.then(() => this.settledResolve?.());
  }

  /** The resourceVersion the next watch resumes from. */
  get resourceVersion(): string {
    return this.listWatch?.latestResourceVersion() ?? "";
  }

  /** The collection path watched. */
  get path(): string {
    return this.opts.path;
  }

  /** Starts listing and watching. */
  async start(): Promise<void> {
    const lib = await import("@kubernetes/client-node");
    const range = this.opts.watchTimeoutSeconds ?? [300, 600];
    const clearRefusal = () => {
      this.refusal = undefined;
    };
    class BookmarkingWatch extends lib.Watch {
      override watch(
        path: string,
        query: Record<string, string | number | boolean | undefined>,
        cb: (phase: string, obj: unknown, raw?: unknown) => void,
        done: (err: unknown) => void,
      ): Promise<AbortController> {
        const timeoutSeconds = range[0] + Math.floor(Math.random() * (range[1] - range[0] + 1));
        const seen = (phase: string, obj: unknown, raw?: unknown) => {
          clearRefusal();
          cb(phase, obj, raw);
        };
        return super.watch(path, { ...query, allowWatchBookmarks: true, timeoutSeconds }, seen, done);
      }
    }
    const lw = new lib.ListWatch<KubernetesObject>(
      this.opts.path,
      new BookmarkingWatch(this.opts.client.config),
      () => this.list() as Promise<KubernetesListObject<KubernetesObject>>,
      false,
      this.opts.labelSelector,
    );
    const stamp = (o: KubernetesObject): KubeObject => {
      const k = o as KubeObject;
      if (!k.kind) k.kind = this.opts.kind;
      if (!k.apiVersion) k.apiVersion = this.opts.apiVersion;
      return k;
    };
    lw.on("add", (o) => {
      this.attempt = 0;
      this.handlers.upsert(stamp(o));
    });
    lw.on("update", (o) => {
      this.attempt = 0;
      this.handlers.upsert(stamp(o));
    });
    lw.on("delete", (o) => {
      this.attempt = 0;
      this.handlers.remove(stamp(o));
    });
    lw.on("error", (err) => this.retry(err));
    this.listWatch = lw;
    await lw.start();
  }

  /** Stops the informer for good. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    await this.listWatch?.stop();
  }

  private retry(err: unknown): void {
    if (this.stopped) return;
    const delay = Math.min(30_000, 500 * 2 ** this.attempt) * (0.5 + Math.random() / 2);
    this.attempt = Math.min(this.attempt + 1, 10);
    const message = err instanceof Error ? err.message : String(err);
    const statusCode = (err as { statusCode?: unknown }).statusCode;
    if (statusCode === 404 && this.handlers.notServed) {
      this.opts.log.warn(
        { path: this.opts.path, kind: this.opts.kind },
        `${this.opts.kind} is no longer served (404); checking whether its CRD was removed`,
      );
      this.handlers.notServed();
      return;
    }
    if (statusCode === 403) {
      const first = this.refusal === undefined;
      this.refusal = { statusCode, message };
      this.settledResolve?.();
      const held = this.lists > 0 ? "the objects read before are kept" : "none has ever been read";
      const fields = { path: this.opts.path, kind: this.opts.kind, statusCode, err: message, retryInMs: Math.round(delay) };
      // Loud once per outage; the retries after it are routine.
      if (first) this.opts.log.error(fields, `the API server refuses to list/watch ${this.opts.kind} (${statusCode}): check RBAC; ${held}`);
      else this.opts.log.debug(fields, "still refused; retrying");
    } else this.opts.log.warn({ path: this.opts.path, err: message, retryInMs: Math.round(delay) }, "watch failed; restarting");
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (!this.stopped) this.listWatch?.start().catch((e) => this.retry(e));
    }, delay);
  }

  /** A full, paginated list; items get kind/apiVersion (lists leave them out). */
  private async list(): Promise<ListPage> {
    const items: KubeObject[] = [];
    let cont: string | undefined;
    let resourceVersion = "";
    do {
      const q = new URLSearchParams({ limit: String(this.opts.pageSize ?? 500) });
      if (cont) q.set("continue", cont);
      if (this.opts.labelSelector) q.set("labelSelector", this.opts.labelSelector);
      const page = await this.opts.client.request<ListPage>("GET", `${this.opts.path}?${q}`);
      for (const it of page.items ?? []) {
        it.kind = this.opts.kind;
        it.apiVersion = this.opts.apiVersion;
        items.push(it);
      }
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
      cont = page.metadata?.continue || undefined;
    } while (cont);
    this.lists++;
    if (this.refusal) this.opts.log.info({ path: this.opts.path, kind: this.opts.kind }, `${this.opts.kind} can be read again`);
    this.refusal = undefined;
    // ListWatch applies the items right after this promise resolves; mark synced after that.
    setImmediate(() => this.syncedResolve?.());
    return { metadata: { resourceVersion }, items };
  }
}
