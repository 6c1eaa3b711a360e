/**
 * koffi declarations of the libbpf.so.1 functions weft uses: object open/load, programs, maps,
 * links (cgroup and TCX alike through bpf_link_create, swapped in place with bpf_link_update),
 * pins and the map syscalls. Links are handled as plain fds: a pinned link reopened with
 * bpf_obj_get is then no different from one just created. Raw and untyped beyond C:
 * bpf-object.ts, bpf-link.ts and bpf-map.ts wrap them in owners that check every return.
 * Pointers are BigInt (0n = NULL); buffers are passed as Node Buffers (no copy).
 */
import koffi from "koffi";
import { errorMessage, WeftError } from "../common/errors.js";

/** An opaque libbpf pointer (struct bpf_object *, bpf_program *, bpf_map *, bpf_link *). */
export type Ptr = bigint;

/** The libbpf functions, typed. */
export interface Libbpf {
  libbpf_major_version(): number;
  libbpf_minor_version(): number;
  bpf_object__open_file(path: string, opts: null): Ptr;
  bpf_object__load(obj: Ptr): number;
  bpf_object__close(obj: Ptr): void;
  bpf_object__find_program_by_name(obj: Ptr, name: string): Ptr;
  bpf_object__next_program(obj: Ptr, prev: Ptr | null): Ptr;
  bpf_object__next_map(obj: Ptr, prev: Ptr | null): Ptr;
  bpf_program__name(prog: Ptr): string;
  bpf_program__fd(prog: Ptr): number;
  bpf_map__name(map: Ptr): string;
  bpf_map__is_internal(map: Ptr): boolean;
  bpf_map__fd(map: Ptr): number;
  bpf_map__reuse_fd(map: Ptr, fd: number): number;
  bpf_map__initial_value(map: Ptr, size: [number]): Ptr;
  bpf_map__set_initial_value(map: Ptr, data: Buffer, size: number): number;
  bpf_link_create(progFd: number, targetFd: number, attachType: number, opts: null): number;
  bpf_link_detach(linkFd: number): number;
  bpf_link_update(linkFd: number, newProgFd: number, opts: null): number;
  bpf_obj_pin(fd: number, path: string): number;
  bpf_obj_get(path: string): number;
  bpf_obj_get_info_by_fd(fd: number, info: Buffer, len: [number]): number;
  bpf_map_lookup_elem(fd: number, key: Buffer, value: Buffer): number;
  bpf_map_update_elem(fd: number, key: Buffer, value: Buffer, flags: number): number;
  bpf_map_delete_elem(fd: number, key: Buffer): number;
  bpf_map_get_next_key(fd: number, key: Buffer | null, next: Buffer): number;
  bpf_prog_get_fd_by_id(id: number): number;
  bpf_prog_attach(progFd: number, targetFd: number, attachType: number, flags: number): number;
}

const PROTOTYPES: readonly string[] = [
  "int libbpf_major_version(void)",
  "int libbpf_minor_version(void)",
  "void *bpf_object__open_file(const char *path, void *opts)",
  "int bpf_object__load(void *obj)",
  "void bpf_object__close(void *obj)",
  "void *bpf_object__find_program_by_name(void *obj, const char *name)",
  "void *bpf_object__next_program(void *obj, void *prev)",
  "void *bpf_object__next_map(void *obj, void *prev)",
  "const char *bpf_program__name(void *prog)",
  "int bpf_program__fd(void *prog)",
  "const char *bpf_map__name(void *map)",
  "bool bpf_map__is_internal(void *map)",
  "int bpf_map__fd(void *map)",
  "int bpf_map__reuse_fd(void *map, int fd)",
  "void *bpf_map__initial_value(void *map, _Out_ size_t *psize)",
  "int bpf_map__set_initial_value(void *map, const void *data, size_t size)",
  "int bpf_link_create(int prog_fd, int target_fd, uint32_t attach_type, void *opts)",
  "int bpf_link_detach(int link_fd)",
  "int bpf_link_update(int link_fd, int new_prog_fd, void *opts)",
  "int bpf_obj_pin(int fd, const char *pathname)",
  "int bpf_obj_get(const char *pathname)",
  "int bpf_obj_get_info_by_fd(int bpf_fd, void *info, _Inout_ uint32_t *info_len)",
  "int bpf_map_lookup_elem(int fd, const void *key, void *value)",
  "int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)",
  "int bpf_map_delete_elem(int fd, const void *key)",
  "int bpf_map_get_next_key(int fd, const void *key, void *next_key)",
  "int bpf_prog_get_fd_by_id(uint32_t id)",
  "int bpf_prog_attach(int prog_fd, int attachable_fd, uint32_t type, unsigned int flags)",
];

let cached: Libbpf | undefined;

/** libbpf.so.1 is missing or too old; names the package. */
export class LibbpfMissingError extends WeftError {
  override readonly name = "LibbpfMissingError";
  constructor(message: string) {
    super("WEFT_MISSING_DEPENDENCY", message);
  }
}

/** The loaded library (once per process); throws LibbpfMissingError naming the package to install. */
export function libbpf(): Libbpf {
  if (cached) return cached;
  let lib: ReturnType<typeof koffi.load>;
  try {
    lib = koffi.load("libbpf.so.1");
  } catch (e) {
    throw new LibbpfMissingError(`libbpf.so.1 could not be loaded (${errorMessage(e)}): run 'apt-get install -y libbpf1'`);
  }
  const out: Record<string, unknown> = {};
  for (const proto of PROTOTYPES) {
    const fn = lib.func(proto);
    const name = /(\w+)\(/.exec(proto)?.[1] as string;
    out[name] = fn;
  }
  cached = out as unknown as Libbpf;
  if (cached.libbpf_major_version() < 1) {
    throw new LibbpfMissingError(
      `libbpf ${cached.libbpf_major_version()}.${cached.libbpf_minor_version()} is too old: weft needs libbpf 1.x (apt-get install -y libbpf1)`,
    );
  }
  return cached;
}

/** Kernel attach types weft uses (enum bpf_attach_type; the installed uapi header may predate TCX). */
export const ATTACH = {
  CGROUP_SOCK_CREATE: 2,
  CGROUP_SOCK_OPS: 3,
  CGROUP_INET4_CONNECT: 10,
  CGROUP_INET6_CONNECT: 11,
  CGROUP_INET4_GETPEERNAME: 29,
  CGROUP_INET6_GETPEERNAME: 30,
  CGROUP_INET4_GETSOCKNAME: 31,
  CGROUP_INET6_GETSOCKNAME: 32,
  /** An sk_skb verdict program on a sockmap/sockhash (kernel 5.13+, no stream parser). */
  SK_SKB_VERDICT: 38,
  TCX_INGRESS: 46,
  TCX_EGRESS: 47,
} as const;

/** Kernel link types (enum bpf_link_type), for decoding link info. */
export const LINK_TYPE = { CGROUP: 3, TCX: 11 } as const;
