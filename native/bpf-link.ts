/**
 * A BPF link by fd: created (cgroup or TCX, both through BPF_LINK_CREATE) or reopened from its
 * pin. Closing the fd of a pinned link leaves it attached (that is how capture outlives the
 * agent); detach() cuts it loose for good. update() swaps the program in place (BPF_LINK_UPDATE):
 * the hook never goes without a program, so a restart or upgrade has no capture gap.
 */
import { closeSync, constants, openSync } from "node:fs";
import { constants as osConstants } from "node:os";
import { BpfError, checkInt, errnoNumber } from "./bpf-error.js";
import { type LinkInfo, linkInfo } from "./bpf-info.js";
import { ATTACH, LINK_TYPE, libbpf } from "./libbpf.js";
import { ifNameToIndex, lastErrno, withNetns } from "./libc.js";

/** A link fd this object owns. */
export class BpfLink {
  private closed = false;

  private constructor(
    readonly name: string,
    private readonly linkFd: number,
  ) {}

  /** Attaches a program to a cgroup (v2 directory) with a BPF link. */
  static attachCgroup(name: string, progFd: number, cgroupPath: string, attachType: number): BpfLink {
    let cg: number;
    try {
      cg = openSync(cgroupPath, constants.O_RDONLY | constants.O_DIRECTORY);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? "ENOENT";
      const errno = (osConstants.errno as Record<string, number>)[code] ?? errnoNumber("ENOENT");
      throw new BpfError(`attach ${name} to cgroup ${cgroupPath}`, errno, "cannot open the cgroup");
    }
    try {
      const fd = checkInt(`attach ${name} to cgroup ${cgroupPath}`, libbpf().bpf_link_create(progFd, cg, attachType, null), lastErrno);
      return new BpfLink(name, fd);
    } finally {
      closeSync(cg);
    }
  }

  /**
   * Attaches a tc program to an interface with TCX (egress = toward whatever is behind the
   * interface, for a host-side veth: the pod). The interface is looked up, and the link made,
   * inside netnsPath when given (the calling thread enters it and comes back).
   */
  static attachTcx(name: string, progFd: number, ifname: string, direction: "ingress" | "egress", netnsPath?: string): BpfLink {
    const attach = (): BpfLink => {
      const ifindex = ifNameToIndex(ifname);
      const type = direction === "egress" ? ATTACH.TCX_EGRESS : ATTACH.TCX_INGRESS;
      const fd = checkInt(
        `attach ${name} to ${ifname} (TCX ${direction})`,
        libbpf().bpf_link_create(progFd, ifindex, type, null),
        lastErrno,
      );
      return new BpfLink(name, fd);
    };
    return netnsPath ? withNetns(netnsPath, attach) : attach();
  }

  /** Reopens a pinned link. */
  static openPinned(path: string): BpfLink {
    const fd = checkInt(`open pinned link ${path}`, libbpf().bpf_obj_get(path), lastErrno);
    return new BpfLink(path, fd);
  }

  /** The fd (throws once closed). */
  get fd(): number {
    if (this.closed) throw new BpfError(`use link ${this.name}`, errnoNumber("EBADF"), "closed");
    return this.linkFd;
  }

  /** What the kernel says about this link (type, ids, cgroup or ifindex). */
  info(): LinkInfo {
    return linkInfo(this.fd, LINK_TYPE.CGROUP, LINK_TYPE.TCX);
  }

  /** Pins the link at path so it outlives this process. */
  pin(path: string): void {
    checkInt(`pin link ${this.name} at ${path}`, libbpf().bpf_obj_pin(this.fd, path), lastErrno);
  }

  /** Replaces the attached program in place (BPF_LINK_UPDATE). */
  update(progFd: number): void {
    checkInt(`swap the program of link ${this.name}`, libbpf().bpf_link_update(this.fd, progFd, null), lastErrno);
  }

  /** Detaches the link from its hook now, even if pinned or held elsewhere (BPF_LINK_DETACH). */
  detach(): void {
    checkInt(`detach link ${this.name}`, libbpf().bpf_link_detach(this.fd), lastErrno);
  }

  /** Releases the fd; a pinned link stays attached. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.linkFd);
  }
}
