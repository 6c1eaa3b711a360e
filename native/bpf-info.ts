/**
 * BPF_OBJ_GET_INFO_BY_FD for maps, programs and links, decoded from the stable leading fields of
 * struct bpf_map_info / bpf_prog_info / bpf_link_info (offsets checked against the kernel's BTF
 * by test/unit/bpf-abi.test.ts). Used to validate pinned objects before trusting them.
 */

import { checkInt } from "./bpf-error.js";
import { libbpf } from "./libbpf.js";
import { lastErrno } from "./libc.js";

/** Offsets of the fields decoded below (the ABI test compares them with the kernel's BTF). */
export const INFO_OFFSETS = {
  bpf_map_info: { type: 0, id: 4, key_size: 8, value_size: 12, max_entries: 16, map_flags: 20, name: 24 },
  bpf_prog_info: { type: 0, id: 4, name: 64 },
  bpf_link_info: { type: 0, id: 4, prog_id: 8 },
  bpf_link_info_cgroup: { cgroup_id: 0, attach_type: 8 },
  bpf_link_info_tcx: { ifindex: 0, attach_type: 4 },
} as const;

/** Where the per-type union starts in struct bpf_link_info. */
export const LINK_INFO_UNION_OFFSET = 16;

/** What the kernel says about a map. */
export interface MapInfo {
  type: number;
  id: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  name: string;
}

/** What the kernel says about a program. */
export interface ProgInfo {
  type: number;
  id: number;
  name: string;
}

/** What the kernel says about a link. */
export interface LinkInfo {
  type: number;
  id: number;
  progId: number;
  /** cgroup links: the cgroup id; 0 otherwise. */
  cgroupId: bigint;
  /** TCX links: the interface (0 once the device is gone); 0 otherwise. */
  ifindex: number;
  attachType: number;
}

function rawInfo(fd: number, what: string): Buffer {
  // Larger than any of the structs; the kernel accepts a longer, zero-filled buffer.
  const buf = Buffer.alloc(256);
  const len: [number] = [buf.length];
  checkInt(`read ${what} info (fd ${fd})`, libbpf().bpf_obj_get_info_by_fd(fd, buf, len), lastErrno);
  return buf;
}

function cString(buf: Buffer, offset: number, max: number): string {
  const slice = buf.subarray(offset, offset + max);
  const end = slice.indexOf(0);
  return slice.subarray(0, end < 0 ? max : end).toString("utf8");
}

/** Info of a map fd. */
export function mapInfo(fd: number): MapInfo {
  const b = rawInfo(fd, "map");
  const o = INFO_OFFSETS.bpf_map_info;
  return {
    type: b.readUInt32LE(o.type),
    id: b.readUInt32LE(o.id),
    keySize: b.readUInt32LE(o.key_size),
    valueSize: b.readUInt32LE(o.value_size),
    maxEntries: b.readUInt32LE(o.max_entries),
    flags: b.readUInt32LE(o.map_flags),
    name: cString(b, o.name, 16),
  };
}

/** Info of a program fd. */
export function progInfo(fd: number): ProgInfo {
  const b = rawInfo(fd, "program");
  const o = INFO_OFFSETS.bpf_prog_info;
  return { type: b.readUInt32LE(o.type), id: b.readUInt32LE(o.id), name: cString(b, o.name, 16) };
}

/** Info of a link fd. */
export function linkInfo(fd: number, cgroupType: number, tcxType: number): LinkInfo {
  const b = rawInfo(fd, "link");
  const o = INFO_OFFSETS.bpf_link_info;
  const type = b.readUInt32LE(o.type);
  const u = LINK_INFO_UNION_OFFSET;
  const info: LinkInfo = { type, id: b.readUInt32LE(o.id), progId: b.readUInt32LE(o.prog_id), cgroupId: 0n, ifindex: 0, attachType: 0 };
  if (type === cgroupType) {
    info.cgroupId = b.readBigUInt64LE(u + INFO_OFFSETS.bpf_link_info_cgroup.cgroup_id);
    info.attachType = b.readUInt32LE(u + INFO_OFFSETS.bpf_link_info_cgroup.attach_type);
  } else if (type === tcxType) {
    info.ifindex = b.readUInt32LE(u + INFO_OFFSETS.bpf_link_info_tcx.ifindex);
    info.attachType = b.readUInt32LE(u + INFO_OFFSETS.bpf_link_info_tcx.attach_type);
  }
  return info;
}
