// checkpoint/pth.ts against the rank files PyTorch itself wrote (fixtures/released-ranks, expected.json), hostile
// pickles (refused by name, nothing run) and malformed archives (typed errors).

import { createHash } from "node:crypto";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { PthError, pthTensorToFloat64, readPth, readPthTensor, type PthErrorCode } from "../../checkpoint/pth.ts";
import { Pickle, pthArchive, zip } from "./pth-writer.ts";

const DIR = fileURLToPath(new URL("../../fixtures/released-ranks/", import.meta.url));
const file = (name: string): Uint8Array => new Uint8Array(readFileSync(join(DIR, name)));

interface Expected {
  dtype: string;
  shape: number[];
  sha256_of_values_c_order?: string;
  layer0_head0?: number[];
  last_layer_last_head?: number[];
  values: number[][][] | null;
  key?: string;
}
const expected = JSON.parse(readFileSync(join(DIR, "expected.json"), "utf8")) as Record<string, Expected & { must_refuse?: boolean }>;

function pthError(code: PthErrorCode, refused?: string) {
  return (e: unknown): boolean => e instanceof PthError && e.code === code && (refused === undefined || e.refused === refused);
}

function catchPth(f: () => unknown): PthError {
  try {
    f();
  } catch (e) {
    if (e instanceof PthError) return e;
    throw e;
  }
  throw new Error("expected a PthError");
}

describe("files written by torch.save (expected.json)", () => {
  for (const [name, exp] of Object.entries(expected)) {
    if (exp.must_refuse) continue;
    it(`${name}: dtype, shape and every given value`, () => {
      const t = readPthTensor(file(name), name, exp.key);
      expect(t.dtype).toBe(exp.dtype);
      expect(t.shape).toEqual(exp.shape);
      expect(t.data).toBeInstanceOf(Uint8Array);
      expect(t.data.length).toBe(exp.shape.reduce((a, b) => a * b, 1));
      const bytes = t.data as Uint8Array;
      if (exp.sha256_of_values_c_order !== undefined) {
        expect(createHash("sha256").update(bytes).digest("hex")).toBe(exp.sha256_of_values_c_order);
      }
      const [L, H, W] = exp.shape;
      if (exp.layer0_head0) expect(Array.from(bytes.subarray(0, W))).toEqual(exp.layer0_head0);
      if (exp.last_layer_last_head) expect(Array.from(bytes.subarray((L * H - 1) * W))).toEqual(exp.last_layer_last_head);
      if (exp.values !== null) expect(Array.from(bytes)).toEqual(exp.values.flat(2));
    });
  }

  it("dict-wrapped-ranks.pth is a dict with the one key 'ranks'", () => {
    const c = readPth(file("dict-wrapped-ranks.pth"), "dict-wrapped-ranks.pth");
    expect(c.kind).toBe("dict");
    if (c.kind === "dict") expect([...c.tensors.keys()]).toEqual(["ranks"]);
    expect(() => readPthTensor(file("dict-wrapped-ranks.pth"), "d.pth", "other")).toThrow(PthError);
    // the same tensor without a key (the dict's only entry)
    expect(Array.from(pthTensorToFloat64(readPthTensor(file("dict-wrapped-ranks.pth"))))).toEqual(expected["dict-wrapped-ranks.pth"].values!.flat(2));
  });
});

describe("hostile pickles are refused by name, never run", () => {
  it("refuse-me.pth (posix.system) is refused at its GLOBAL", () => {
    const e = catchPth(() => readPth(file("refuse-me.pth"), "refuse-me.pth"));
    expect(e.code).toBe("refused_global");
    expect(e.refused).toBe("posix.system");
    expect(e.message).toContain("refuse-me.pth");
  });

  it("a system call that would leave a marker file leaves none", () => {
    const marker = join(tmpdir(), `mla-edge-pth-marker-${process.pid}`);
    rmSync(marker, { force: true });
    for (const [module, fn] of [
      ["posix", "system"],
      ["os", "system"],
      ["subprocess", "call"],
    ]) {
      const p = new Pickle().op(0x7d).put().str("ranks").global(module, fn).str(`touch ${marker}`).op(0x85).op(0x52).put().op(0x73).stop();
      const e = catchPth(() => readPth(pthArchive("evil", p, {}), "evil.pth"));
      expect([e.code, e.refused]).toEqual(["refused_global", `${module}.${fn}`]);
    }
    expect(existsSync(marker)).toBe(false);
  });

  it("builtins.eval through STACK_GLOBAL, and INST / OBJ / NEWOBJ, are refused", () => {
    const viaStack = new Pickle().str("builtins").str("eval").op(0x93).str("1+1").op(0x85, 0x52).stop();
    expect(() => readPth(pthArchive("a", viaStack, {}))).toThrow(expect.objectContaining({ code: "refused_global", refused: "builtins.eval" }));
    const inst = new Pickle().op(0x28).op(0x69, ...new TextEncoder().encode("os\nsystem\n")).stop();
    expect(catchPth(() => readPth(pthArchive("a", inst, {}))).refused).toBe("INST");
    const newobj = new Pickle().global("collections", "OrderedDict").op(0x29, 0x81).stop();
    expect(catchPth(() => readPth(pthArchive("a", newobj, {}))).refused).toBe("NEWOBJ");
  });

  it("an allowed storage type is not callable", () => {
    const p = new Pickle().global("torch", "ByteStorage").op(0x29, 0x52).stop();
    const e = catchPth(() => readPth(pthArchive("a", p, {})));
    expect([e.code, e.refused]).toEqual(["refused_opcode", "REDUCE"]);
  });

  it("a plain value that is not a tensor is not_a_tensor", () => {
    expect(() => readPth(pthArchive("a", new Pickle().int(7).stop(), {}))).toThrow(expect.objectContaining({ code: "not_a_tensor" }));
  });
});

describe("malformed archives give typed errors", () => {
  const good = file("qwen25vl-mini-ranks.pth");
  it("truncated anywhere", () => {
    for (const n of [0, 10, 100, 300, good.length - 30, good.length - 1]) {
      expect(() => readPth(good.subarray(0, n), "cut.pth"), `cut at ${n}`).toThrow(PthError);
    }
    expect(catchPth(() => readPth(good.subarray(0, 100))).code).toBe("bad_zip");
  });

  it("a flipped byte in the storage fails its CRC", () => {
    const bad = good.slice();
    bad[350] ^= 0xff; // inside qwen25vl-mini-ranks/data/0 (local header at 237, data 64-byte aligned at 320)
    expect(() => readPth(bad)).toThrow(expect.objectContaining({ code: "bad_zip" }));
  });

  it("missing data.pkl, missing storage entry, wrong storage size", () => {
    const storage = new Uint8Array(64);
    const pickle = new Pickle().tensor("ByteStorage", "0", 64, 0, [2, 2, 16], [32, 16, 1]).stop();
    expect(() => readPth(zip([{ name: "x/data/0", data: storage }]))).toThrow(expect.objectContaining({ code: "missing_entry" }));
    expect(() => readPth(pthArchive("x", pickle, {}))).toThrow(expect.objectContaining({ code: "missing_entry" }));
    expect(catchPth(() => readPth(pthArchive("x", pickle, { "0": new Uint8Array(63) }), "short.pth")).message).toMatch(/short\.pth: x\/data\/0 has 63 bytes; a 64-element uint8 storage needs 64/);
    // shape reaching past the storage
    const over = new Pickle().tensor("ByteStorage", "0", 64, 1, [2, 2, 16], [32, 16, 1]).stop();
    expect(() => readPth(pthArchive("x", over, { "0": storage }))).toThrow(expect.objectContaining({ code: "bad_storage" }));
  });

  it("a pickle cut short or with an unbalanced stack", () => {
    const p = new Pickle().tensor("ByteStorage", "0", 64, 0, [64], [1]).stop();
    expect(() => readPth(pthArchive("x", p.subarray(0, 40), { "0": new Uint8Array(64) }))).toThrow(expect.objectContaining({ code: "bad_pickle" }));
    expect(() => readPth(pthArchive("x", Uint8Array.from([0x80, 2, 0x52, 0x2e]), {}))).toThrow(expect.objectContaining({ code: "bad_pickle" }));
  });
});

describe("tensor rebuild: offset, stride, dtypes, deflate", () => {
  it("honours storage offset and non-contiguous strides (C-order output)", () => {
    const storage = Uint8Array.from({ length: 30 }, (_, i) => i);
    // a [3, 4] view at offset 5 of a storage laid out transposed (stride [1, 5]) = x[j*5 + i + 5]
    const p = new Pickle().tensor("ByteStorage", "0", 30, 5, [3, 4], [1, 5]).stop();
    const t = readPthTensor(pthArchive("t", p, { "0": storage }));
    expect(t.shape).toEqual([3, 4]);
    expect(Array.from(pthTensorToFloat64(t))).toEqual([5, 10, 15, 20, 6, 11, 16, 21, 7, 12, 17, 22]);
    // an expanded view (stride 0)
    const e = readPthTensor(pthArchive("t", new Pickle().tensor("ByteStorage", "0", 30, 2, [2, 3], [0, 1]).stop(), { "0": storage }));
    expect(Array.from(pthTensorToFloat64(e))).toEqual([2, 3, 4, 2, 3, 4]);
    // an expanded view asking for 4 GiB from a 30-byte storage is refused before any allocation
    const huge = new Pickle().tensor("ByteStorage", "0", 30, 0, [65536, 65536], [0, 0]).stop();
    expect(() => readPth(pthArchive("t", huge, { "0": storage }))).toThrow(expect.objectContaining({ code: "bad_storage" }));
  });

  it("int64, float32, float16, bfloat16 storages, in a dict, deflated", () => {
    const i64 = new BigInt64Array([-3n, 0n, 1n << 40n]);
    const f32 = new Float32Array([1.5, -2.25, 3e-5]);
    const f16 = new Uint16Array([0x3c00, 0xc000, 0x3555]); // 1, -2, 0.333251953125
    const bf16 = new Uint16Array([0x3f80, 0xc040, 0x3eab]); // 1, -3, 0.333984375
    const p = new Pickle().global("collections", "OrderedDict").op(0x29, 0x52).put().op(0x28);
    p.str("a").tensor("LongStorage", "0", 3, 0, [3], [1]);
    p.str("b").tensor("FloatStorage", "1", 3, 0, [3], [1]);
    p.str("c").tensor("HalfStorage", "2", 3, 0, [3], [1]);
    p.str("d").tensor("BFloat16Storage", "3", 3, 0, [3], [1]);
    const bytes = pthArchive(
      "mixed",
      p.op(0x75).stop(),
      { "0": new Uint8Array(i64.buffer), "1": new Uint8Array(f32.buffer), "2": new Uint8Array(f16.buffer), "3": new Uint8Array(bf16.buffer) },
      { deflate: true },
    );
    const c = readPth(bytes, "mixed.pth");
    if (c.kind !== "dict") throw new Error("expected a dict");
    expect([...c.tensors.keys()]).toEqual(["a", "b", "c", "d"]);
    expect(c.tensors.get("a")!.dtype).toBe("int64");
    expect(Array.from(pthTensorToFloat64(c.tensors.get("a")!))).toEqual([-3, 0, 2 ** 40]);
    expect(Array.from(pthTensorToFloat64(c.tensors.get("b")!))).toEqual(Array.from(f32));
    expect(Array.from(pthTensorToFloat64(c.tensors.get("c")!))).toEqual([1, -2, 0.333251953125]);
    expect(Array.from(pthTensorToFloat64(c.tensors.get("d")!))).toEqual([1, -3, 0.333984375]);
  });
});
