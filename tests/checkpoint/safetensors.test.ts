// Safetensors reading (lazy, sharded, dtype decoding) and writing (deterministic layout) against independent values.

import { mkdtemp, rm, writeFile, readFile, readdir, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  bufferByteSource,
  CheckpointError,
  copyTensors,
  decodeFloat32,
  floatToBf16,
  floatToHalf,
  SafetensorsFile,
  serializeSafetensors,
  type TensorToWrite,
} from "../../checkpoint/index.ts";
import { openCheckpointDir, openSafetensorsFile, writeSafetensorsFile, writeShardedCheckpoint } from "../../checkpoint/io.node.ts";
import { f16ToF32 } from "../../format/codec/fp16.ts";

const FIXTURE = fileURLToPath(new URL("../../fixtures/tiny-qwen-vl/", import.meta.url));

async function expectCode(p: Promise<unknown> | (() => unknown), code: string): Promise<void> {
  try {
    await (typeof p === "function" ? p() : p);
  } catch (e) {
    expect(e).toBeInstanceOf(CheckpointError);
    expect((e as CheckpointError).code).toBe(code);
    expect((e as CheckpointError).name).toBe("CheckpointError");
    return;
  }
  throw new Error(`expected CheckpointError(${code})`);
}

describe("safetensors reader on the fixture", () => {
  it("reads tensors lazily with the values numpy reads", async () => {
    const st = await openSafetensorsFile(join(FIXTURE, "model.safetensors"));
    try {
      expect(st.names()).toHaveLength(3 + 4 * 12);
      expect(st.metadata).toEqual({ format: "pt" });
      const kb = await st.readFloat32("model.layers.2.self_attn.k_proj.bias", [64]);
      // independent values: numpy.frombuffer on the same file
      expect(kb[0]).toBeCloseTo(0.09709074, 7);
      expect(kb[1]).toBeCloseTo(-0.15967038, 7);
      let s = 0;
      for (const v of kb) s += v;
      expect(s).toBeCloseTo(0.3106285245157778, 9);
      const head = await st.readFloat32("lm_head.weight");
      expect(head[5 * 128 + 2]).toBeCloseTo(-0.3259802, 7);
      let hs = 0;
      for (const v of head) hs += v;
      expect(hs).toBeCloseTo(-51.69115007169512, 6);
    } finally {
      await st.close();
    }
  });

  it("raises typed errors for missing tensors and wrong shapes", async () => {
    const st = await openSafetensorsFile(join(FIXTURE, "model.safetensors"));
    try {
      await expectCode(() => st.info("model.layers.9.self_attn.q_proj.weight"), "missing_tensor");
      await expectCode(st.readFloat32("model.norm.weight", [64]), "shape_mismatch");
    } finally {
      await st.close();
    }
  });
});

describe("dtype conversion", () => {
  it("encodes f16 and bf16 with round-to-nearest-even (bit patterns from numpy)", () => {
    const xs = [1 / 3, -2.5, 1e-6, 65504, 3.14159];
    expect(xs.map(floatToHalf)).toEqual([0x3555, 0xc100, 0x11, 0x7bff, 0x4248]);
    expect(xs.map(floatToBf16)).toEqual([0x3eab, 0xc020, 0x3586, 0x4780, 0x4049]);
    expect(floatToHalf(70000)).toBe(0x7c00);
    expect(f16ToF32(0x3555)).toBe(0.333251953125);
    expect(f16ToF32(0x0001)).toBe(2 ** -24);
    expect(f16ToF32(0xfc00)).toBe(-Infinity);
  });

  it("decodes bf16 by shifting into the f32 high half", () => {
    const bytes = new Uint8Array(new Uint16Array([0x3f80, 0xc020, 0x3eab]).buffer);
    expect(Array.from(decodeFloat32(bytes, "BF16", 3, "t"))).toEqual([1, -2.5, 0.333984375]);
  });

  it("decodes from an unaligned offset", () => {
    const buf = new Uint8Array(13);
    new DataView(buf.buffer).setFloat32(1, 1.5, true);
    new DataView(buf.buffer).setFloat32(5, -7.25, true);
    expect(Array.from(decodeFloat32(buf.subarray(1, 9), "F32", 2, "t"))).toEqual([1.5, -7.25]);
  });
});

describe("safetensors writer", () => {
  const tensors: TensorToWrite[] = [
    { name: "b.weight", dtype: "F32", shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
    { name: "a.bias", dtype: "BF16", shape: [3], data: new Float32Array([1, -2.5, 1 / 3]) },
    { name: "c.half", dtype: "F16", shape: [2], data: () => new Float64Array([0.5, 65504]) },
    { name: "d.idx", dtype: "I32", shape: [2, 1], data: new Int32Array([7, -3]) },
  ];

  it("writes a byte-exact, name-sorted, 8-byte padded header", async () => {
    const bytes = await serializeSafetensors(tensors, { format: "pt" });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const json = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    expect(json.trimEnd()).toBe(
      '{"__metadata__":{"format":"pt"},' +
        '"a.bias":{"dtype":"BF16","shape":[3],"data_offsets":[0,6]},' +
        '"b.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[6,22]},' +
        '"c.half":{"dtype":"F16","shape":[2],"data_offsets":[22,26]},' +
        '"d.idx":{"dtype":"I32","shape":[2,1],"data_offsets":[26,34]}}',
    );
    expect(bytes.byteLength).toBe(8 + n + 34);
    const again = await serializeSafetensors([...tensors].reverse(), { format: "pt" });
    expect(Buffer.from(again).equals(Buffer.from(bytes))).toBe(true);
  });

  it("round-trips through the reader from an ArrayBuffer", async () => {
    const st = await SafetensorsFile.open(bufferByteSource(await serializeSafetensors(tensors)));
    expect(Array.from(await st.readFloat32("b.weight", [2, 2]))).toEqual([1, 2, 3, 4]);
    expect(Array.from(await st.readFloat32("a.bias"))).toEqual([1, -2.5, 0.333984375]);
    expect(Array.from(await st.readFloat32("c.half"))).toEqual([0.5, 65504]);
    expect(Array.from(await st.readInt32("d.idx", [2, 1]))).toEqual([7, -3]);
    await expectCode(st.readInt32("b.weight"), "unsupported_dtype");
  });

  it("rejects data whose length disagrees with the shape", async () => {
    await expectCode(serializeSafetensors([{ name: "x", dtype: "F32", shape: [3], data: new Float32Array(2) }]), "shape_mismatch");
    await expectCode(
      serializeSafetensors([
        { name: "x", dtype: "F32", shape: [1], data: new Float32Array(1) },
        { name: "x", dtype: "F32", shape: [1], data: new Float32Array(1) },
      ]),
      "duplicate_tensor",
    );
  });
});

describe("copyTensors", () => {
  it("passes unchanged dtypes through as raw bytes and converts on request", async () => {
    const src = await SafetensorsFile.open(
      bufferByteSource(
        await serializeSafetensors([
          { name: "e", dtype: "BF16", shape: [2, 2], data: new Float32Array([1, -2.5, 1 / 3, 3.14159]) },
          { name: "f", dtype: "F32", shape: [2], data: new Float32Array([0.1, 0.2]) },
          { name: "i", dtype: "I32", shape: [1], data: new Int32Array([42]) },
        ]),
      ),
    );
    const same = await SafetensorsFile.open(bufferByteSource(await serializeSafetensors(copyTensors(src, src.names()))));
    for (const n of ["e", "f", "i"]) expect(Buffer.from(await same.readBytes(n)).equals(Buffer.from(await src.readBytes(n)))).toBe(true);
    const half = await SafetensorsFile.open(bufferByteSource(await serializeSafetensors(copyTensors(src, ["e", "f"], "F16"))));
    expect(half.info("f").dtype).toBe("F16");
    expect(Array.from(await half.readFloat32("e"))).toEqual([1, -2.5, 0.333984375, 3.140625]);
    expect(Math.abs((await half.readFloat32("f"))[0] - 0.1)).toBeLessThan(1e-4);
  });
});

describe("corrupt files", () => {
  async function open(bytes: Uint8Array) {
    return SafetensorsFile.open(bufferByteSource(bytes));
  }
  function withHeader(json: string, dataBytes: number): Uint8Array {
    const j = new TextEncoder().encode(json);
    const out = new Uint8Array(8 + j.byteLength + dataBytes);
    new DataView(out.buffer).setBigUint64(0, BigInt(j.byteLength), true);
    out.set(j, 8);
    return out;
  }

  it("rejects short files, absurd lengths, bad JSON, bad offsets and unknown dtypes", async () => {
    await expectCode(open(new Uint8Array(4)), "bad_header");
    const huge = new Uint8Array(16);
    new DataView(huge.buffer).setBigUint64(0, 1n << 40n, true);
    await expectCode(open(huge), "bad_header");
    await expectCode(open(withHeader("{not json", 0)), "bad_header");
    await expectCode(open(withHeader('{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', 8)), "bad_header");
    await expectCode(open(withHeader('{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', 4)), "bad_header");
    await expectCode(open(withHeader('{"x":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}}', 8)), "unsupported_dtype");
    await expectCode(open(withHeader('{"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}', 8)), "bad_header");
  });
});

describe("checkpoint folders", () => {
  let dir = "";
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "ckpt-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("writes shards with an index and reads them back lazily", async () => {
    const out = join(dir, "sharded");
    const tensors: TensorToWrite[] = [];
    for (let i = 0; i < 5; i++) {
      tensors.push({ name: `model.layers.${i}.w`, dtype: "F32", shape: [4, 4], data: Float32Array.from({ length: 16 }, (_, j) => i * 100 + j) });
    }
    const files = await writeShardedCheckpoint(out, tensors, { maxShardBytes: 130 });
    expect(files).toEqual([
      "model-00001-of-00003.safetensors",
      "model-00002-of-00003.safetensors",
      "model-00003-of-00003.safetensors",
      "model.safetensors.index.json",
    ]);
    await writeFile(join(out, "config.json"), await readFile(join(FIXTURE, "config.json")));
    const index = JSON.parse(await readFile(join(out, "model.safetensors.index.json"), "utf8"));
    expect(index.weight_map["model.layers.4.w"]).toBe("model-00003-of-00003.safetensors");
    expect(index.metadata.total_size).toBe(5 * 64);
    const ck = await openCheckpointDir(out);
    try {
      expect(ck.source.names().sort()).toEqual(tensors.map((t) => t.name).sort());
      const w3 = await ck.source.readFloat32("model.layers.3.w", [4, 4]);
      expect(w3[5]).toBe(305);
      expect(ck.config.hiddenSize).toBe(128);
    } finally {
      await ck.source.close();
    }
  });

  it("rejects an index that points a tensor at the wrong shard", async () => {
    const out = join(dir, "badindex");
    await mkdir(out, { recursive: true });
    await writeSafetensorsFile(join(out, "a.safetensors"), [{ name: "x", dtype: "F32", shape: [1], data: new Float32Array(1) }]);
    await writeFile(join(out, "config.json"), await readFile(join(FIXTURE, "config.json")));
    await writeFile(join(out, "model.safetensors.index.json"), JSON.stringify({ weight_map: { y: "a.safetensors" } }));
    await expectCode(openCheckpointDir(out), "bad_index");
    expect((await readdir(out)).some((f) => f.includes(".tmp-"))).toBe(false);
  });

  it("opens the fixture folder with the vision tower as an extra file", async () => {
    const ck = await openCheckpointDir(FIXTURE, { extraFiles: ["visual.safetensors"] });
    try {
      expect(ck.files).toEqual(["model.safetensors", "visual.safetensors"]);
      expect(ck.source.has("visual.attn.in_proj_weight")).toBe(true);
      expect(ck.source.info("visual.attn.in_proj_weight").shape).toEqual([384, 128]);
    } finally {
      await ck.source.close();
    }
  });
});
