import { WeftError } from "../common/errors.js";
import { BpfError, checkInt, checkPtr, errnoNumber } from "./bpf-error.js";
import { BpfMap } from "./bpf-map.js";
import { type Libbpf, libbpf, type Ptr } from "./libbpf.js";
import { lastErrno } from "./libc.js";
import { pathExists } from "./paths.js";

/** A loaded program: its name and fd (owned by the object). */
export interface BpfProgram {
  name: string;
  fd: number;
}

/** The object file is not there: names it and how to build it. */
export class MissingObjectError extends WeftError {
  override readonly name = "MissingObjectError";
  constructor(readonly path: string) {
    super(
      "WEFT_MISSING_DEPENDENCY",
      `BPF object ${path} is missing: build it with 'npm run build' (or 'bash scripts/build-bpf', which needs clang and bpftool)`,
    );
  }
}

/** One opened (and, after load(), loaded) BPF object file. */
export class BpfObject {
  private obj: Ptr | null;
  private loaded = false;
  private readonly lib: Libbpf;

  private constructor(
    readonly path: string,
    obj: Ptr,
  ) {
    this.obj = obj;
    this.lib = libbpf();
  }

  /** Opens an object file (parses ELF and BTF; nothing reaches the kernel yet). */
  static open(path: string): BpfObject {
    if (!pathExists(path)) throw new MissingObjectError(path);
    const lib = libbpf();
    const obj = checkPtr(`open BPF object ${path}`, lib.bpf_object__open_file(path, null), lastErrno);
    return new BpfObject(path, obj);
  }

  private get ptr(): Ptr {
    if (this.obj === null) throw new BpfError(`use BPF object ${this.path}`, errnoNumber("EBADF"), "closed");
    return this.obj;
  }

  private mapPtr(name: string): Ptr {
    for (let m = this.lib.bpf_object__next_map(this.ptr, null); m; m = this.lib.bpf_object__next_map(this.ptr, m)) {
      if (this.lib.bpf_map__name(m) === name) return m;
    }
    throw new BpfError(
      `find map ${name} in ${this.path}`,
      errnoNumber("ENOENT"),
      "the object does not define it: was it built from other sources?",
    );
  }

  /** Names of the maps the object defines (without libbpf's internal .rodata/.bss maps). */
  mapNames(): string[] {
    const out: string[] = [];
    for (let m = this.lib.bpf_object__next_map(this.ptr, null); m; m = this.lib.bpf_object__next_map(this.ptr, m)) {
      if (!this.lib.bpf_map__is_internal(m)) out.push(this.lib.bpf_map__name(m));
    }
    return out;
  }

  /** Names of the programs in the object. */
  programNames(): string[] {
    const out: string[] = [];
    for (let p = this.lib.bpf_object__next_program(this.ptr, null); p; p = this.lib.bpf_object__next_program(this.ptr, p)) {
      out.push(this.lib.bpf_program__name(p));
    }
    return out;
  }

  /** Size of .rodata (the load-time constants), 0 when the object has none. */
  rodataSize(): number {
    for (let m = this.lib.bpf_object__next_map(this.ptr, null); m; m = this.lib.bpf_object__next_map(this.ptr, m)) {
      if (this.lib.bpf_map__is_internal(m) && this.lib.bpf_map__name(m).endsWith(".rodata")) {
        const size: [number] = [0];
        this.lib.bpf_map__initial_value(m, size);
        return size[0];
      }
    }
    return 0;
  }

  /** Writes the load-time constants: the whole of .rodata, which must be exactly this size. */
  setRodata(data: Buffer): void {
    if (this.loaded) throw new Error(`set constants of ${this.path}: already loaded`);
    const size = this.rodataSize();
    if (size !== data.length) {
      throw new Error(
        `set constants of ${this.path}: .rodata is ${size} bytes, the config is ${data.length}: the object and the agent disagree on the ABI (rebuild both)`,
      );
    }
    for (let m = this.lib.bpf_object__next_map(this.ptr, null); m; m = this.lib.bpf_object__next_map(this.ptr, m)) {
      if (this.lib.bpf_map__is_internal(m) && this.lib.bpf_map__name(m).endsWith(".rodata")) {
        checkInt(`set constants of ${this.path}`, this.lib.bpf_map__set_initial_value(m, data, data.length), lastErrno);
        return;
      }
    }
  }

  /** Makes the object use an existing (pinned) map instead of creating its own; before load(). */
  reuseMap(name: string, map: BpfMap): void {
    checkInt(`reuse pinned map ${name} in ${this.path}`, this.lib.bpf_map__reuse_fd(this.mapPtr(name), map.fd), lastErrno);
  }

  /** Creates the maps not reused and loads every program into the kernel (the verifier runs here). */
  load(): void {
    checkInt(`load BPF object ${this.path} (the verifier log, if any, is above)`, this.lib.bpf_object__load(this.ptr), lastErrno);
    this.loaded = true;
  }

  /** A loaded program by name. */
  program(name: string): BpfProgram {
    const p = this.lib.bpf_object__find_program_by_name(this.ptr, name);
    if (!p) throw new BpfError(`find program ${name} in ${this.path}`, errnoNumber("ENOENT"));
    const fd = checkInt(`program ${name} of ${this.path}`, this.lib.bpf_program__fd(p), lastErrno);
    return { name, fd };
  }

  /** A loaded map by name (borrowed: valid until close()). */
  map(name: string): BpfMap {
    const fd = checkInt(`map ${name} of ${this.path}`, this.lib.bpf_map__fd(this.mapPtr(name)), lastErrno);
    return BpfMap.borrow(name, fd);
  }

  /** Releases programs, maps and fds libbpf holds; links and pins made from them stay. */
  close(): void {
    if (this.obj === null) return;
    this.lib.bpf_object__close(this.obj);
    this.obj = null;
  }
}
