// The Qwen2.5-VL vision tower on WebGPU (runtime/vision/qwen2_5_vl-vision-gpu.ts) on dawn.node + SwiftShader and in
// Chromium (WebGPU on SwiftShader), fixtures/qwen25vl-mini: both images alone and together in one request, with f32,
// f16 and int8 (MatMulNBits, block 32, the bundle packer's quantizer) weights. f32 weights: the merged embeddings
// within the fixture's reference.json tolerance (as the CPU tower's test) and equal to the CPU tower (f64) within f32
// rounding; f16 and int8 weights: close to the CPU tower with f32 weights (bounds from the weights' rounding, below).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseQwen25VLConfig, type Qwen25VisionConfig } from "../../checkpoint/families/qwen2_5_vl.ts";
import { openCheckpointDir } from "../../checkpoint/io.node.ts";
import { loadQwen25VisionWeights, planQwen25Vision, qwen25VisionAngles, runQwen25VisionPlan } from "../../runtime/vision/qwen2_5_vl-vision.ts";
import { qwen25VisionPositions } from "../../runtime/vision/qwen2_5_vl-vision-gpu.ts";
import { runTsx } from "../helpers/run-tsx.ts";
import { swiftShaderEnv } from "../helpers/swiftshader-env.ts";
import { skipWithout } from "../helpers/system-tools.ts";
import { openInChromium, type BrowserSession } from "../kernels/chromium.ts";
import { loadReference, maxAbsDiff, MINI_DIR, pixelValuesNoResize, refCase, type RefVision } from "./qwen25vl-fixture.ts";
import { encodeVisionInputs, type VisionGpuResult, type VisionInputs, type VisionRequest } from "./vision-gpu/harness.ts";

const root = resolve(import.meta.dirname, "../..");

let cfg: Qwen25VisionConfig;
let inputs: VisionInputs;
let blobDir = "";
/** CPU tower (f64 activations, f32 weights) per request. */
const cpu = new Map<string, Float32Array>();
/** reference.json's vision summary per request (the two-image request: both, split at the first image's rows). */
const refs = new Map<string, RefVision[]>();

beforeAll(async () => {
  const ref = loadReference();
  cfg = parseQwen25VLConfig(JSON.parse(readFileSync(join(MINI_DIR, "config.json"), "utf8"))).vision;
  const ck = await openCheckpointDir(MINI_DIR);
  const weights = new Map(await loadQwen25VisionWeights(ck.source, cfg));
  await ck.source.close();
  const image = (name: string) => {
    const img = refCase(ref, name).images[0];
    const file = ref.images[img.url].resized_file ?? img.url;
    return { ...pixelValuesNoResize(join(MINI_DIR, file)), vision: img.vision };
  };
  const a = image("two_turn");
  const b = image("one_image");
  const both = new Float32Array(a.pixels.length + b.pixels.length);
  both.set(a.pixels);
  both.set(b.pixels, a.pixels.length);
  const requests: VisionRequest[] = [
    { name: "one_image", grids: [b.grid], pixels: b.pixels },
    { name: "two_turn", grids: [a.grid], pixels: a.pixels },
    { name: "both", grids: [a.grid, b.grid], pixels: both },
  ];
  refs.set("one_image", [b.vision]).set("two_turn", [a.vision]).set("both", [a.vision, b.vision]);
  for (const r of requests) cpu.set(r.name, runQwen25VisionPlan(planQwen25Vision(cfg, r.grids), weights, r.pixels));
  inputs = { config: cfg, weights, requests };
  blobDir = mkdtempSync(join(tmpdir(), "vision-gpu-"));
  writeFileSync(join(blobDir, "inputs.bin"), encodeVisionInputs(inputs));
}, 120_000);

afterAll(() => {
  if (blobDir) rmSync(blobDir, { recursive: true, force: true });
});

/** The CPU tower test's comparison with reference.json (first16 / last row 5e-5, row L2 1e-4, sum 1e-2). */
function expectReference(out: ArrayLike<number>, v: RefVision): void {
  const [rows, width] = v.shape;
  expect(out.length).toBe(rows * width);
  const a = Float32Array.from(out);
  expect(maxAbsDiff(a.subarray(0, 16), v.first16)).toBeLessThanOrEqual(5e-5);
  expect(maxAbsDiff(a.subarray((rows - 1) * width, (rows - 1) * width + 16), v.last_row_first16)).toBeLessThanOrEqual(5e-5);
  const l2 = Array.from({ length: rows }, (_, r) => Math.hypot(...a.subarray(r * width, (r + 1) * width)));
  expect(maxAbsDiff(l2, v.row_l2_all)).toBeLessThanOrEqual(1e-4);
  expect(Math.abs(a.reduce((s, x) => s + x, 0) - v.sum)).toBeLessThanOrEqual(1e-2);
}

/** max |gpu − cpu| / max |cpu| */
function relToCpu(out: ArrayLike<number>, name: string): number {
  const c = cpu.get(name)!;
  expect(out.length).toBe(c.length);
  let d = 0;
  let m = 0;
  for (let i = 0; i < c.length; i++) {
    d = Math.max(d, Math.abs(out[i] - c[i]));
    m = Math.max(m, Math.abs(c[i]));
  }
  return d / m;
}

// Measured on SwiftShader (dawn.node, one_image): f32 8.7e-7, f16 8.7e-7 (the fixture's bf16 weights are exact in f16),
// int8 (block 32, symmetric) 1.0e-2 of
// the largest output. The bounds leave ×5–10 margin; a wrong op (e.g. a missing bias or rotary) moves outputs by O(1).
const TOL = { f32: 1e-5, f16: 1e-5, int8: 5e-2 } as const;

function checkResults(results: () => VisionGpuResult[]): void {
  for (const name of ["one_image", "two_turn", "both"]) {
    it(`f32 weights, ${name}: within reference.json's tolerance and equal to the CPU tower within f32 rounding`, () => {
      const r = results().find((x) => x.format === "f32" && x.request === name);
      expect(r, "no result").toBeDefined();
      const out = r!.out;
      expect(relToCpu(out, name)).toBeLessThanOrEqual(TOL.f32);
      const vs = refs.get(name)!;
      let o = 0;
      for (const v of vs) {
        const n = v.shape[0] * v.shape[1];
        expectReference(out.slice(o, o + n), v);
        o += n;
      }
    });
    for (const format of ["f16", "int8"] as const) {
      it(`${format} weights, ${name}: close to the CPU tower (≤ ${TOL[format]} of the largest value)`, () => {
        const r = results().find((x) => x.format === format && x.request === name);
        expect(r, "no result").toBeDefined();
        expect(relToCpu(r!.out, name)).toBeLessThanOrEqual(TOL[format]);
      });
    }
  }
  it("f16 weights take half the f32 bytes and int8 under a third", () => {
    const bytes = (f: string) => results().find((x) => x.format === f)!.weightBytes;
    expect(bytes("f16")).toBeLessThan(bytes("f32") * 0.55);
    expect(bytes("int8")).toBeLessThan(bytes("f32") * 0.34);
  });
}

describe("vision tower GPU plan tables (no GPU)", () => {
  it("rotary positions × inv_freq equal the CPU plan's angles (window order)", () => {
    const grids = [{ t: 1, h: 4, w: 18 }, { t: 1, h: 10, w: 22 }];
    const plan = planQwen25Vision(cfg, grids);
    const pos = qwen25VisionPositions(cfg, grids, plan.windowIndex);
    const half = cfg.headDim / 2;
    const quarter = half / 2;
    let worst = 0;
    for (let r = 0; r < plan.patches; r++) {
      for (let i = 0; i < half; i++) {
        const inv = Math.pow(cfg.ropeTheta, (-2 * (i % quarter)) / half);
        const p = i < quarter ? pos[r] : pos[plan.patches + r];
        worst = Math.max(worst, Math.abs(p * inv - plan.angles[r * half + i]));
      }
    }
    expect(worst).toBeLessThanOrEqual(1e-12);
    // and the unpermuted angles are the CPU's raw table
    expect(qwen25VisionAngles(cfg, grids).length).toBe(plan.angles.length);
  });
});

describe.skipIf(skipWithout(import.meta.url, "swiftshader"))("vision tower on Node WebGPU (dawn.node, SwiftShader)", () => {
  let parsed: { adapter?: string; results?: VisionGpuResult[]; fatal?: string } = { fatal: "child did not run" };
  beforeAll(async () => {
    const outFile = join(blobDir, "node-results.json");
    const child = await runTsx("tests/runtime/vision-gpu/node-runner.ts", [join(blobDir, "inputs.bin"), outFile], { cwd: root, env: swiftShaderEnv() });
    try {
      parsed = JSON.parse(readFileSync(outFile, "utf8")) as typeof parsed;
    } catch {
      parsed = { fatal: `no JSON from the child (exit ${child.code}): ${child.stderr.slice(-2000)}` };
    }
  }, 240_000);

  it("runs on SwiftShader", () => {
    expect(parsed.fatal).toBeUndefined();
    expect(parsed.adapter).toMatch(/swiftshader/i);
  });
  checkResults(() => parsed.results ?? []);
});

describe.skipIf(skipWithout(import.meta.url, "chromium"))("vision tower in Chromium (WebGPU on SwiftShader)", () => {
  let session: BrowserSession | undefined;
  let out: { adapter: string; results: VisionGpuResult[] } = { adapter: "", results: [] };
  beforeAll(async () => {
    session = await openInChromium(resolve(import.meta.dirname, "vision-gpu/browser-entry.ts"), { serveDir: { prefix: "/data/", dir: blobDir } });
    await session.page.waitForFunction(() => "runVisionGpuTower" in globalThis);
    out = (await session.page.evaluate(() => (globalThis as unknown as { runVisionGpuTower(u: string): Promise<unknown> }).runVisionGpuTower("/data/inputs.bin"))) as typeof out;
  }, 240_000);
  afterAll(async () => {
    await session?.close();
  });

  it("runs on SwiftShader", () => {
    expect(out.adapter).toMatch(/swiftshader/i);
  });
  checkResults(() => out.results);
});
