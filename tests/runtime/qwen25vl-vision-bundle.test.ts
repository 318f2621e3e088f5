// visionSourceFromBundle (runtime/vision/qwen2_5_vl-vision-gpu.ts) on real bundles of fixtures/qwen25vl-mini packed by
// `mla-edge pack` (convert/pack/pack-bundle.ts): with --vision f16 the GPU tower gets f16 weights bit-equal to the f32
// checkpoint rounded to f16 (what the GPU test runs), with --vision int8 MatMulNBits bytes equal to the packer's
// quantizer on the same weights (visionSourceFromF32 "int8"); vectors come back as stored (f32, or f16 widened).
// No GPU: the tower's numbers on these weights are checked in qwen25vl-vision-gpu.test.ts.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseQwen25VLConfig, qwen25VisionTensorNames, type Qwen25VisionConfig } from "../../checkpoint/families/qwen2_5_vl.ts";
import { openCheckpointDir } from "../../checkpoint/io.node.ts";
import type { BundleManifest } from "../../checkpoint/bundle/manifest.ts";
import { f16ToF32, f32ToF16Bits } from "../../format/codec/fp16.ts";
import { packBundle } from "../../convert/pack/pack-bundle.ts";
import { tensorArrays, tensorRouterSink } from "../../runtime/loader/bundle-loader.ts";
import { loadQwen25VisionWeights, qwen25VisionWeightShapes, VisionError, type VisionWeights } from "../../runtime/vision/qwen2_5_vl-vision.ts";
import { visionSourceFromBundle, visionSourceFromF32 } from "../../runtime/vision/qwen2_5_vl-vision-gpu.ts";
import { MINI_DIR } from "./qwen25vl-fixture.ts";

let dir = "";
let packs = 0;
let cfg: Qwen25VisionConfig;
let weights: VisionWeights;

async function packed(opts: { vision: "f16" | "int8"; norms: "f32" | "f16" }): Promise<{ manifest: BundleManifest; array: (name: string, part: "b" | "scales" | "zeroPoints" | "data") => Uint8Array }> {
  const out = join(dir, `${opts.vision}-${opts.norms}-${packs++}`);
  const { manifest } = await packBundle(MINI_DIR, out, { weights: "int4", block: 32, vision: opts.vision, norms: opts.norms });
  const arrays = new Map<string, Uint8Array>();
  for (const t of manifest.tensors) for (const [name, a] of tensorArrays(t)) arrays.set(`${t.name}:${name}`, new Uint8Array(Math.ceil((a.rows * a.rowBytes) / 4) * 4));
  const sink = tensorRouterSink(manifest, (s) => void arrays.get(`${s.tensor.name}:${s.array}`)!.set(s.bytes, s.arrayOffset));
  for (const [i, sh] of manifest.shards.entries()) await sink.write(i, 0, new Uint8Array(await readFile(join(out, sh.file))));
  return { manifest, array: (name, part) => arrays.get(`${name}:${part}`)! };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "vision-bundle-"));
  cfg = parseQwen25VLConfig(JSON.parse(await readFile(join(MINI_DIR, "config.json"), "utf8"))).vision;
  const ck = await openCheckpointDir(MINI_DIR);
  weights = await loadQwen25VisionWeights(ck.source, cfg);
  await ck.source.close();
}, 60_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Every tensor of the tower as (name, [n, k]) for linears (the Conv3d kernel flattened) or (name, [len]) for vectors. */
function tensors(): Array<[string, number[]]> {
  return [...qwen25VisionWeightShapes(cfg)].map(([name, shape]) => [name, shape.length === 1 ? shape : [shape[0], shape.slice(1).reduce((a, b) => a * b, 1)]]);
}

describe("visionSourceFromBundle on packed qwen25vl-mini bundles", () => {
  it("--vision f16: every Linear is f16, bit-equal to the checkpoint rounded to f16; f32 vectors as loaded", async () => {
    const { manifest, array } = await packed({ vision: "f16", norms: "f32" });
    const src = visionSourceFromBundle(manifest, array);
    const ref = visionSourceFromF32(weights, "f16");
    let linears = 0;
    for (const [name, shape] of tensors()) {
      if (shape.length === 1) {
        expect(Array.from(src.vector(name, shape[0])), name).toEqual(Array.from(weights.get(name)!));
        continue;
      }
      const got = src.linear(name, shape[0], shape[1]);
      const want = ref.linear(name, shape[0], shape[1]);
      expect(got.kind, name).toBe("f16");
      expect(Buffer.from(got.data.buffer, got.data.byteOffset, got.data.byteLength).equals(Buffer.from(want.data.buffer, want.data.byteOffset, want.data.byteLength)), name).toBe(true);
      linears++;
    }
    expect(linears).toBe(1 + 5 * cfg.depth + 2); // patch, (qkv, proj, gate, up, down) per block, fc1, fc2
  });

  it("--vision int8: 2-D Linears are MatMulNBits int8 equal to the packer's quantizer; the Conv3d kernel stays f16; f16 norms widen", async () => {
    const { manifest, array } = await packed({ vision: "int8", norms: "f16" });
    const src = visionSourceFromBundle(manifest, array);
    const q8 = visionSourceFromF32(weights, "int8", { block: 32 });
    const names = qwen25VisionTensorNames("visual.", cfg.depth);
    for (const [name, shape] of tensors()) {
      if (shape.length === 1) {
        const want = Array.from(weights.get(name)!, (x) => f16ToF32(f32ToF16Bits(x, "nearest-even")));
        expect(Array.from(src.vector(name, shape[0])), name).toEqual(want);
        continue;
      }
      const got = src.linear(name, shape[0], shape[1]);
      if (name === names.patchEmbed) {
        expect(got.kind).toBe("f16");
        continue;
      }
      const want = q8.linear(name, shape[0], shape[1]);
      expect(got.kind, name).toBe("nbits");
      if (got.kind !== "nbits" || want.kind !== "nbits") continue;
      expect([got.bits, got.block, got.zeroPoints]).toEqual([8, 32, undefined]);
      expect(Buffer.from(got.data).equals(Buffer.from(want.data)), `${name} B`).toBe(true);
      expect(Array.from(got.scales), `${name} scales`).toEqual(Array.from(want.scales));
    }
  });

  it("a missing tensor or a wrong shape is a VisionError (missing_weight)", async () => {
    const { manifest, array } = await packed({ vision: "f16", norms: "f32" });
    const src = visionSourceFromBundle(manifest, array);
    expect(() => src.linear("visual.nope.weight", 2, 2)).toThrow(VisionError);
    expect(() => src.vector("visual.blocks.0.norm1.weight", 31)).toThrow(/has 32 values, expected 31/);
  });
});
