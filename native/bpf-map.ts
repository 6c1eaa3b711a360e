/**
 * A BPF map by fd (a loaded object's map, or a pinned one reopened by path), with typed access
 * through codecs. It owns its fd only when it opened it itself (close() releases it); a map
 * borrowed from a BpfObject is closed with the object.
 */
import { closeSync, unlinkSync } from "node:fs";
import { BpfError, checkInt, errnoNumber } from "./bpf-error.js";
import { type MapInfo, mapInfo } from "./bpf-info.js";
import { libbpf } from "./libbpf.js";
import { lastErrno } from "./libc.js";

/** Encodes/decodes one fixed-size map key or value. */
export interface Codec<T> {
  /** Size in bytes (must equal the map's key or value size). */
  readonly size: number;
  encode(value: T): Buffer;
  decode(buf: Buffer): T;
}

/** BPF_ANY / BPF_NOEXIST / BPF_EXIST. */
export const UPDATE = { ANY: 0, NOEXIST: 1, EXIST: 2 } as const;

const ENOENT = errnoNumber("ENOENT");

/** A map fd with its name, for errors. */
export class BpfMap {
  private closed = false;

  private constructor(
    readonly name: string,
    private readonly mapFd: number,
    private readonly owned: boolean,
  ) {}

  /** Wraps a map fd owned by someone else (a loaded object). */
  static borrow(name: string, fd: number): BpfMap {
    return new BpfMap(name, fd, false);
  }

  /** Opens a pinned map (BPF_OBJ_GET); the returned map owns the fd. */
  static openPinned(path: string): BpfMap {
    const fd = checkInt(`open pinned map ${path}`, libbpf().bpf_obj_get(path), lastErrno);
    return new BpfMap(path, fd, true);
  }

  /** The fd (throws once closed). */
  get fd(): number {
    if (this.closed) throw new BpfError(`use map ${this.name}`, errnoNumber("EBADF"), "closed");
    return this.mapFd;
  }

  /** What the kernel says about this map. */
  info(): MapInfo {
    return mapInfo(this.fd);
  }

  /** Pins the map at path. */
  pin(path: string): void {
    checkInt(`pin map ${this.name} at ${path}`, libbpf().bpf_obj_pin(this.fd, path), lastErrno);
  }

  /** Raw lookup; null when the key is absent. */
  lookupRaw(key: Buffer, valueSize: number): Buffer | null {
    const value = Buffer.alloc(valueSize);
    const r = libbpf().bpf_map_lookup_elem(this.fd, key, value);
    if (r === 0) return value;
    const e = r === -1 ? lastErrno() : -r;
    if (e === ENOENT) return null;
    throw new BpfError(`look up in map ${this.name}`, e);
  }

  /** Typed lookup; null when absent. */
  lookup<K, V>(k: Codec<K>, v: Codec<V>, key: K): V | null {
    const raw = this.lookupRaw(k.encode(key), v.size);
    return raw ? v.decode(raw) : null;
  }

  /** Raw update (BPF_ANY unless told). */
  updateRaw(key: Buffer, value: Buffer, flags: number = UPDATE.ANY): void {
    checkInt(`update map ${this.name}`, libbpf().bpf_map_update_elem(this.fd, key, value, flags), lastErrno);
  }

  /** Raw delete; returns false when the key was not there. */
  deleteRaw(key: Buffer): boolean {
    const r = libbpf().bpf_map_delete_elem(this.fd, key);
    if (r === 0) return true;
    const e = r === -1 ? lastErrno() : -r;
    if (e === ENOENT) return false;
    throw new BpfError(`delete from map ${this.name}`, e);
  }

  /** Typed update (BPF_ANY unless told). */
  update<K, V>(k: Codec<K>, v: Codec<V>, key: K, value: V, flags: number = UPDATE.ANY): void {
    this.updateRaw(k.encode(key), v.encode(value), flags);
  }

  /** Typed delete; returns false when the key was not there. */
  delete<K>(k: Codec<K>, key: K): boolean {
    return this.deleteRaw(k.encode(key));
  }

  /** Every key (BPF_MAP_GET_NEXT_KEY walk), raw. Entries may change meanwhile; each key is seen at most once per walk unless re-added. */
  keysRaw(keySize: number): Buffer[] {
    const keys: Buffer[] = [];
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(keySize);
      const r = libbpf().bpf_map_get_next_key(this.fd, prev, next);
      if (r !== 0) {
        const e = r === -1 ? lastErrno() : -r;
        if (e === ENOENT) return keys;
        throw new BpfError(`iterate map ${this.name}`, e);
      }
      keys.push(next);
      prev = next;
    }
  }

  /** Every entry, decoded (entries removed during the walk are skipped). */
  entries<K, V>(k: Codec<K>, v: Codec<V>): [K, V][] {
    const out: [K, V][] = [];
    for (const key of this.keysRaw(k.size)) {
      const value = this.lookupRaw(key, v.size);
      if (value) out.push([k.decode(key), v.decode(value)]);
    }
    return out;
  }

  /** Number of entries (a walk; fine for the control path). */
  count(keySize: number): number {
    return this.keysRaw(keySize).length;
  }

  /** Releases the fd if this map owns it. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.owned) closeSync(this.mapFd);
  }
}

/** Removes a pin file; missing is fine. */
export function unpin(path: string): boolean {
  try {
    unlinkSync(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw e;
  }
}
