/**
 * The TCX guard links, one per guarded pod's host-side veth (egress, toward the pod), pinned as
 * guard_if<ifindex>. A restarted agent adopts the pinned ones and swaps their program in place;
 * a link whose veth is gone (the pod was deleted) is dropped.
 */
import { join } from "node:path";
import { BpfLink } from "../../native/bpf-link.js";
import { unpin } from "../../native/bpf-map.js";
import { LINK_TYPE } from "../../native/libbpf.js";
import { ifNameToIndex, withNetns } from "../../native/libc.js";
import { listPins, openPinnedLink } from "./pins.js";
import { guardPinIfindex, guardPinName } from "./programs.js";

/** One attached guard. */
export interface GuardLinkInfo {
  ifindex: number;
  linkId: number;
  progId: number;
}

/** Owner of the guard links of one pin directory. */
export class GuardLinks {
  private readonly links = new Map<number, BpfLink>();

  constructor(
    private readonly pinDir: string,
    private readonly progFd: number,
    /** netns of the pods' host veths when it is not this thread's (null = here). */
    private readonly netnsPath: string | null,
  ) {}

  /** Takes over pinned guard links, swapping in this agent's program; drops dead ones. */
  adoptPinned(): void {
    for (const name of listPins(this.pinDir)) {
      const ifindex = guardPinIfindex(name);
      if (ifindex === null) continue;
      const path = join(this.pinDir, name);
      const link = openPinnedLink(path);
      if (!link) continue;
      const info = link.info();
      if (info.type !== LINK_TYPE.TCX || info.ifindex !== ifindex) {
        // The veth went away (ifindex 0) or the pin is not what its name says: drop it.
        this.dropLink(link, path);
        continue;
      }
      link.update(this.progFd);
      this.links.set(ifindex, link);
    }
  }

  /** ifindex of an interface where the host veths live. */
  ifindexOf(ifname: string): number {
    return this.netnsPath ? withNetns(this.netnsPath, () => ifNameToIndex(ifname)) : ifNameToIndex(ifname);
  }

  /** Makes sure the guard runs on this interface; returns its ifindex. */
  ensure(ifname: string): number {
    const ifindex = this.ifindexOf(ifname);
    if (this.links.has(ifindex)) return ifindex;
    const link = BpfLink.attachTcx(`guard on ${ifname}`, this.progFd, ifname, "egress", this.netnsPath ?? undefined);
    try {
      link.pin(join(this.pinDir, guardPinName(ifindex)));
    } catch (e) {
      link.detach();
      link.close();
      throw e;
    }
    this.links.set(ifindex, link);
    return ifindex;
  }

  /** Removes the guard from every interface not in keep; returns the ifindexes removed. */
  removeExcept(keep: ReadonlySet<number>): number[] {
    const removed: number[] = [];
    for (const [ifindex, link] of this.links) {
      if (keep.has(ifindex)) continue;
      this.dropLink(link, join(this.pinDir, guardPinName(ifindex)));
      this.links.delete(ifindex);
      removed.push(ifindex);
    }
    return removed;
  }

  /** The attached guards. */
  list(): GuardLinkInfo[] {
    return [...this.links].map(([ifindex, link]) => {
      const info = link.info();
      return { ifindex, linkId: info.id, progId: info.progId };
    });
  }

  /** Releases fds; pinned guards stay attached. */
  close(): void {
    for (const link of this.links.values()) link.close();
    this.links.clear();
  }

  private dropLink(link: BpfLink, path: string): void {
    try {
      link.detach();
    } catch {
      // a link whose device is gone may refuse; unpinning below releases it anyway
    }
    unpin(path);
    link.close();
  }
}
