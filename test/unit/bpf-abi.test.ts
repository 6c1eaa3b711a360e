/**
 * The ABI check: every TypeScript codec against the BTF of the built objects (sizes and member
 * offsets), every map's definition against MAP_SHAPES, every constant against weft_abi.h, and
 * the bpf_*_info offsets native/bpf-info.ts decodes against the running kernel's BTF.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import {
  ABI_VERSION,
  INBOUND_MODE,
  MAGIC,
  MAP,
  MAP_SHAPES,
  MAX_EXCLUDES,
  MAX_PODS,
  MAX_TUPLES,
  POD_CAPTURE,
  REASON_MAX,
  REASONS,
  STRUCT_CODECS,
} from "../../agent/redirect/abi.js";
import { FIELD_SIZE } from "../../agent/redirect/codec.js";
import { OBJECT_FILES } from "../../agent/redirect/programs.js";
import { INFO_OFFSETS, LINK_INFO_UNION_OFFSET } from "../../native/bpf-info.js";
import { ROOT } from "../helpers/weft.js";

interface BtfType {
  id: number;
  kind: string;
  name?: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: { name: string; type_id: number; bits_offset: number }[];
  vars?: { type_id: number; offset: number; size: number }[];
}

/** Minimal BTF model over `bpftool -j btf dump file`. */
class Btf {
  private readonly byId = new Map<number, BtfType>();
  constructor(readonly types: BtfType[]) {
    for (const t of types) this.byId.set(t.id, t);
  }
  static load(path: string): Btf {
    const bpftool = ["/usr/sbin/bpftool", "/sbin/bpftool", "/usr/bin/bpftool"].find(existsSync) ?? "bpftool";
    const out = execFileSync(bpftool, ["-j", "btf", "dump", "file", path], { maxBuffer: 256 * 1024 * 1024, encoding: "utf8" });
    return new Btf((JSON.parse(out) as { types: BtfType[] }).types);
  }
  get(id: number): BtfType {
    const t = this.byId.get(id);
    if (!t) throw new Error(`BTF type ${id} missing`);
    return t;
  }
  /** Follows typedefs and qualifiers to the type that has a size. */
  resolve(id: number): BtfType {
    let t = this.get(id);
    while (["TYPEDEF", "VOLATILE", "CONST", "RESTRICT", "TYPE_TAG"].includes(t.kind)) t = this.get(t.type_id as number);
    return t;
  }
  sizeOf(id: number): number {
    const t = this.resolve(id);
    if (t.kind === "ARRAY") return (t.nr_elems as number) * this.sizeOf(t.type_id as number);
    return t.size as number;
  }
  struct(name: string): BtfType | undefined {
    return this.types.find((t) => (t.kind === "STRUCT" || t.kind === "UNION") && t.name === name);
  }
  /** Offset in bytes of a member of a struct. */
  memberOffset(structName: string, member: string): number {
    const s = this.struct(structName);
    const m = s?.members?.find((x) => x.name === member);
    if (!m) throw new Error(`${structName}.${member} not in BTF`);
    return m.bits_offset / 8;
  }
}

const BUILD = join(ROOT, "bpf", "build");

describe("BPF ABI: TypeScript codecs and constants match the C side", () => {
  const objects = new Map<string, Btf>();
  beforeAll(() => {
    for (const f of OBJECT_FILES) {
      const path = join(BUILD, f);
      if (!existsSync(path)) throw new Error(`${path} is missing: run 'npm run build' (npm test builds it)`);
      objects.set(f, Btf.load(path));
    }
  });

  it("every struct codec has the C struct's size, members and offsets, in every object that has it", () => {
    for (const codec of STRUCT_CODECS) {
      let seen = 0;
      for (const [file, btf] of objects) {
        const s = btf.struct(codec.cName);
        if (!s) continue;
        seen++;
        expect(s.size, `${file}: sizeof(struct ${codec.cName})`).toBe(codec.size);
        const cMembers = (s.members ?? []).filter((m) => !m.name.startsWith("_pad"));
        expect(cMembers.map((m) => m.name).sort(), `${file}: members of ${codec.cName}`).toEqual(codec.fields.map((f) => f.name).sort());
        for (const m of cMembers) {
          const f = codec.fields.find((x) => x.name === m.name);
          expect(f?.offset, `${file}: offset of ${codec.cName}.${m.name}`).toBe(m.bits_offset / 8);
          expect(FIELD_SIZE[f?.type ?? "u32"], `${file}: size of ${codec.cName}.${m.name}`).toBe(btf.sizeOf(m.type_id));
        }
      }
      expect(seen, `struct ${codec.cName} is in no built object`).toBeGreaterThan(0);
    }
  });

  it("each object's .rodata is exactly struct weft_config (the one load-time constant)", () => {
    for (const [file, btf] of objects) {
      const sec = btf.types.find((t) => t.kind === "DATASEC" && t.name === ".rodata");
      expect(sec, `${file} has .rodata`).toBeDefined();
      expect(sec?.vars?.length, `${file}: .rodata variables`).toBe(1);
      const v = btf.get(sec?.vars?.[0]?.type_id as number);
      expect(v.name).toBe("weft_cfg");
      expect(sec?.vars?.[0]?.offset).toBe(0);
      expect(btf.sizeOf(v.type_id as number)).toBe(STRUCT_CODECS.find((c) => c.cName === "weft_config")?.size);
    }
  });

  it("every object defines every shared map with the type, key, value and size MAP_SHAPES expects", () => {
    for (const [file, btf] of objects) {
      const names = btf.types.filter((t) => t.kind === "VAR" && t.name?.startsWith("weft_") && t.name !== "weft_cfg").map((t) => t.name);
      expect(names.sort(), `${file}: maps`).toEqual(Object.values(MAP).sort());
      for (const name of Object.values(MAP)) {
        const v = btf.types.find((t) => t.kind === "VAR" && t.name === name) as BtfType;
        const def = btf.resolve(v.type_id as number);
        const field = (f: string) => def.members?.find((m) => m.name === f);
        // __uint(x, N) is `int (*x)[N]`; __type(x, T) is `T *x`.
        const uintOf = (f: string) => {
          const m = field(f);
          return m ? (btf.get(btf.get(m.type_id).type_id as number).nr_elems as number) : 0;
        };
        const sizeOf = (f: string) => btf.sizeOf(btf.get(field(f)?.type_id as number).type_id as number);
        const want = MAP_SHAPES[name];
        expect(
          { type: uintOf("type"), key: sizeOf("key"), value: sizeOf("value"), max: uintOf("max_entries") },
          `${file}: ${name}`,
        ).toEqual({
          type: want?.type,
          key: want?.keySize,
          value: want?.valueSize,
          max: want?.maxEntries,
        });
      }
    }
  });

  it("constants, modes and reason codes equal weft_abi.h", () => {
    const h = readFileSync(join(ROOT, "bpf", "include", "weft_abi.h"), "utf8");
    const define = (n: string) => Number(new RegExp(`#define ${n}\\s+\\(?([0-9a-fx]+)`, "i").exec(h)?.[1]);
    expect(define("WEFT_ABI_VERSION")).toBe(ABI_VERSION);
    expect(define("WEFT_MAGIC")).toBe(MAGIC);
    expect(define("WEFT_MAX_PODS")).toBe(MAX_PODS);
    expect(define("WEFT_MAX_TUPLES")).toBe(MAX_TUPLES);
    expect(define("WEFT_MAX_EXCLUDES")).toBe(MAX_EXCLUDES);
    expect(/#define WEFT_POD_CAPTURE \(1U << 0\)/.test(h)).toBe(true);
    expect(POD_CAPTURE).toBe(1);
    const enumOf = (name: string) => {
      const body = new RegExp(`enum ${name} \\{([^}]*)\\}`, "s").exec(h)?.[1] ?? "";
      return [...body.matchAll(/WEFT_\w+?_([A-Z0-9_]+)\s*=\s*(\d+)/g)].map((m) => [(m[1] as string).toLowerCase(), Number(m[2])] as const);
    };
    expect(Object.fromEntries(enumOf("weft_inbound_mode"))).toEqual(INBOUND_MODE);
    const reasons = enumOf("weft_reason");
    const max = reasons.find(([n]) => n === "max");
    expect(max?.[1]).toBe(REASON_MAX);
    for (const [name, value] of reasons.filter(([n]) => n !== "max")) expect(REASONS[value], `reason ${value}`).toBe(name);
    expect(REASONS.length).toBe(reasons.length - 1);
  });
});

describe("BPF ABI: the kernel info structs native/bpf-info.ts decodes", () => {
  it("match the running kernel's BTF", () => {
    const btf = Btf.load("/sys/kernel/btf/vmlinux");
    for (const s of ["bpf_map_info", "bpf_prog_info", "bpf_link_info"] as const) {
      for (const [member, offset] of Object.entries(INFO_OFFSETS[s])) expect(btf.memberOffset(s, member), `${s}.${member}`).toBe(offset);
    }
    const link = btf.struct("bpf_link_info");
    const union = link?.members?.find((m) => (m.name === "" || m.name === "(anon)") && btf.resolve(m.type_id).kind === "UNION");
    expect(union ? union.bits_offset / 8 : -1).toBe(LINK_INFO_UNION_OFFSET);
    const u = btf.resolve(union?.type_id as number);
    for (const [arm, fields] of [
      ["cgroup", INFO_OFFSETS.bpf_link_info_cgroup],
      ["tcx", INFO_OFFSETS.bpf_link_info_tcx],
    ] as const) {
      const m = u.members?.find((x) => x.name === arm);
      expect(m, `bpf_link_info.${arm}`).toBeDefined();
      const st = btf.resolve(m?.type_id as number);
      for (const [f, off] of Object.entries(fields)) {
        expect((st.members?.find((x) => x.name === f)?.bits_offset ?? -8) / 8, `bpf_link_info.${arm}.${f}`).toBe(off);
      }
    }
  });
});
