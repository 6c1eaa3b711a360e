/**
 * Fixed-layout codecs for BPF map keys and values. Each struct codec carries its C name and its
 * field offsets, so test/unit/bpf-abi.test.ts can hold it against the BTF of the built objects:
 * a layout change on one side without the other fails a test instead of mis-reading a map.
 *
 * Field types: u16/u32/u64 are host order (cgroup ids, flags, counters); be16 is a port kept in
 * network order in memory; ipv4 is an address in network order, "a.b.c.d" in TypeScript.
 */
import { endianness } from "node:os";
import type { Codec } from "../../native/bpf-map.js";

const LE = endianness() === "LE";

/** The types a field may have. */
export type FieldType = "u16" | "u32" | "u64" | "be16" | "ipv4";

/** Size in bytes of each field type. */
export const FIELD_SIZE: Readonly<Record<FieldType, number>> = { u16: 2, u32: 4, u64: 8, be16: 2, ipv4: 4 };

/** One field of a struct codec. */
export interface FieldSpec {
  /** Name of the C member (and of the TypeScript property). */
  name: string;
  type: FieldType;
  offset: number;
}

/** A struct codec with its C layout. */
export interface StructCodec<T> extends Codec<T> {
  /** The C struct this mirrors (in bpf/include/weft_abi.h). */
  readonly cName: string;
  readonly fields: readonly FieldSpec[];
}

type FieldValue<F extends FieldType> = F extends "u64" ? bigint : F extends "ipv4" ? string : number;

/** Parses dotted-quad IPv4 to its 32-bit value; throws naming the text. */
export function ipv4ToInt(text: string): number {
  const parts = text.split(".");
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) {
    throw new Error(`'${text}' is not an IPv4 address`);
  }
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

/** 32-bit value to dotted quad. */
export function intToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

function writeField(buf: Buffer, f: FieldSpec, v: unknown): void {
  switch (f.type) {
    case "u16":
      if (LE) buf.writeUInt16LE(v as number, f.offset);
      else buf.writeUInt16BE(v as number, f.offset);
      return;
    case "u32":
      if (LE) buf.writeUInt32LE((v as number) >>> 0, f.offset);
      else buf.writeUInt32BE((v as number) >>> 0, f.offset);
      return;
    case "u64":
      if (LE) buf.writeBigUInt64LE(BigInt(v as bigint), f.offset);
      else buf.writeBigUInt64BE(BigInt(v as bigint), f.offset);
      return;
    case "be16":
      buf.writeUInt16BE(v as number, f.offset);
      return;
    case "ipv4":
      buf.writeUInt32BE(ipv4ToInt(v as string), f.offset);
      return;
  }
}

function readField(buf: Buffer, f: FieldSpec): unknown {
  switch (f.type) {
    case "u16":
      return LE ? buf.readUInt16LE(f.offset) : buf.readUInt16BE(f.offset);
    case "u32":
      return LE ? buf.readUInt32LE(f.offset) : buf.readUInt32BE(f.offset);
    case "u64":
      return LE ? buf.readBigUInt64LE(f.offset) : buf.readBigUInt64BE(f.offset);
    case "be16":
      return buf.readUInt16BE(f.offset);
    case "ipv4":
      return intToIpv4(buf.readUInt32BE(f.offset));
  }
}

/**
 * A codec for a C struct of the given size; bytes not covered by a field (padding) are zero on
 * encode, which LPM and hash keys need.
 */
export function structCodec<const S extends Readonly<Record<string, FieldType>>>(
  cName: string,
  size: number,
  layout: { [K in keyof S]: readonly [S[K], number] },
): StructCodec<{ [K in keyof S]: FieldValue<S[K]> }> {
  const fields: FieldSpec[] = Object.entries(layout).map(([name, [type, offset]]) => ({
    name,
    type: type as FieldType,
    offset: offset as number,
  }));
  for (const f of fields) {
    if (f.offset + FIELD_SIZE[f.type] > size) throw new Error(`codec ${cName}: field ${f.name} overruns the struct`);
  }
  type T = { [K in keyof S]: FieldValue<S[K]> };
  return {
    cName,
    size,
    fields,
    encode(value: T): Buffer {
      const buf = Buffer.alloc(size);
      for (const f of fields) writeField(buf, f, (value as Record<string, unknown>)[f.name]);
      return buf;
    },
    decode(buf: Buffer): T {
      if (buf.length < size) throw new Error(`codec ${cName}: ${buf.length} bytes, expected ${size}`);
      const out: Record<string, unknown> = {};
      for (const f of fields) out[f.name] = readField(buf, f);
      return out as T;
    },
  };
}

/** A codec for one scalar (a map key that is a bare integer or address). */
export function scalarCodec<F extends FieldType>(type: F): Codec<FieldValue<F>> {
  const f: FieldSpec = { name: "v", type, offset: 0 };
  return {
    size: FIELD_SIZE[type],
    encode(value: FieldValue<F>): Buffer {
      const buf = Buffer.alloc(FIELD_SIZE[type]);
      writeField(buf, f, value);
      return buf;
    },
    decode(buf: Buffer): FieldValue<F> {
      return readField(buf, f) as FieldValue<F>;
    },
  };
}
