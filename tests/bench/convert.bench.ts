// Conversion at real size (issue 19): generates deterministically, into a temporary folder removed afterwards, a
// Qwen2.5-VL-7B-shaped (or --model-size 3b) bf16 sharded checkpoint — every decoder tensor and the vision tower at
// their released shapes, random values — converts it data-free (high + joint SVD, d_kv 64, 32 rope dims) in a child
// process, and with --calib-tokens N also MD-SVD + mkl on N synthetic calibration tokens. Reports wall seconds, the
// converter's peak RSS, seconds per layer for each phase and bytes written. Targets (2-core dev machine): 7B data-free
// ≤ 15 minutes with peakRssBytes ≤ 3 GiB. `npm run -s bench:convert -- --json` prints one JSON object.
import { spawn } from "node:child_process";
import { mkdtemp, rm, statfs } from "node:fs/promises";
import { tmpdir, cpus } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { floatToBf16 } from "../../checkpoint/dtype.ts";
import { parseQwen25VisionConfig, QWEN2_5_VL_3B_CONFIG, QWEN2_5_VL_7B_CONFIG } from "../../checkpoint/families/qwen2_5_vl.ts";
import { writeShardedCheckpoint } from "../../checkpoint/io.node.ts";
import type { TensorToWrite } from "../../checkpoint/safetensors-writer.ts";
import { QWEN2_5_VL_NAMING, layerTensorNames } from "../../checkpoint/families/index.ts";
import { qwen25VisionWeightShapes } from "../../runtime/vision/qwen2_5_vl-vision.ts";
import { writeFile } from "node:fs/promises";

const { values: args } = parseArgs({
  options: {
    json: { type: "boolean", default: false },
    "model-size": { type: "string", default: "7b" },
    "calib-tokens": { type: "string", default: "0" },
    layers: { type: "string" },
    dir: { type: "string" },
  },
});
const size = args["model-size"];
if (size !== "7b" && size !== "3b") throw new Error(`--model-size must be 7b or 3b, got ${size}`);
const calibTokens = Number(args["calib-tokens"]);
if (!Number.isInteger(calibTokens) || calibTokens < 0) throw new Error("--calib-tokens must be a non-negative integer");
const base = size === "7b" ? QWEN2_5_VL_7B_CONFIG : QWEN2_5_VL_3B_CONFIG;
const layers = args.layers === undefined ? base.num_hidden_layers : Number(args.layers);
const config: Record<string, unknown> = { ...base, num_hidden_layers: layers };
const TARGET_S = 15 * 60;
const TARGET_RSS = 3 * 2 ** 30;
const log = (s: string) => process.stderr.write(s);

/** A pool of random bf16 values (N(0, 0.02²)-like); a tensor is a window of it starting at an offset from its name. */
const POOL = 1 << 24;
const pool = (() => {
  const p = new Uint16Array(POOL + (1 << 20));
  let s = 2463534242;
  for (let i = 0; i < p.length; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    const u = s / 2 ** 32;
    p[i] = floatToBf16((u - 0.5) * 0.07);
  }
  return p;
})();

function hash(name: string): number {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619) >>> 0;
  return h;
}

function tensor(name: string, shape: number[], norm = false): TensorToWrite {
  return {
    name,
    dtype: "BF16",
    shape,
    data: () => {
      const n = shape.reduce((a, b) => a * b, 1);
      const out = new Uint16Array(n);
      if (norm) out.fill(floatToBf16(1));
      else {
        let off = hash(name) % POOL;
        for (let i = 0; i < n; ) {
          const take = Math.min(n - i, POOL + (1 << 20) - off);
          out.set(pool.subarray(off, off + take), i);
          i += take;
          off = 0;
        }
      }
      return new Uint8Array(out.buffer);
    },
  };
}

async function generate(dir: string): Promise<number> {
  const d = base.hidden_size;
  const f = base.intermediate_size;
  const v = base.vocab_size;
  const nh = base.num_attention_heads;
  const nkv = base.num_key_value_heads;
  const dh = d / nh;
  const n = QWEN2_5_VL_NAMING;
  const t: TensorToWrite[] = [tensor(n.embedTokens, [v, d]), tensor(n.finalNorm, [d], true)];
  if (!base.tie_word_embeddings) t.push(tensor(n.lmHead, [v, d]));
  for (let l = 0; l < layers; l++) {
    const ln = layerTensorNames(n, l);
    t.push(
      tensor(ln.qWeight, [nh * dh, d]), tensor(ln.qBias, [nh * dh]),
      tensor(ln.kWeight, [nkv * dh, d]), tensor(ln.kBias, [nkv * dh]),
      tensor(ln.vWeight, [nkv * dh, d]), tensor(ln.vBias, [nkv * dh]),
      tensor(ln.oWeight, [d, nh * dh]),
      tensor(ln.gate, [f, d]), tensor(ln.up, [f, d]), tensor(ln.down, [d, f]),
      tensor(ln.inputNorm, [d], true), tensor(ln.postNorm, [d], true),
    );
  }
  const vcfg = parseQwen25VisionConfig(base.vision_config, d);
  for (const [name, shape] of qwen25VisionWeightShapes(vcfg)) t.push(tensor(name, shape, /norm|ln_q/.test(name) && shape.length === 1));
  await writeShardedCheckpoint(dir, t, { maxShardBytes: 4_000_000_000 });
  await writeFile(join(dir, "config.json"), JSON.stringify(config, null, 2));
  return t.reduce((s, x) => s + x.shape.reduce((a, b) => a * b, 1) * 2, 0);
}

interface RunnerResult {
  seconds: number;
  phases: Record<string, number>;
  layerPhases: Record<string, number>;
  layerSeconds: number[];
  layers: number;
  bytesWritten: number;
  files: number;
  calibrationTokens: { text: number; image: number };
  maxRssBytes: number;
  vmHwmBytes: number | null;
}

function runConversion(payload: Record<string, unknown>): Promise<RunnerResult & { wallSeconds: number }> {
  const runner = fileURLToPath(new URL("./convert-runner.ts", import.meta.url));
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", runner, JSON.stringify(payload)], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let errTail = "";
    child.stdout.on("data", (b: Buffer) => (out += b.toString()));
    child.stderr.on("data", (b: Buffer) => {
      const s = b.toString();
      errTail = (errTail + s).slice(-4000);
      if (!args.json || process.env.BENCH_VERBOSE) log(s);
    });
    child.on("exit", (code) => {
      if (code !== 0) reject(new Error(`conversion failed (exit ${code}): ${errTail}`));
      else resolve({ ...(JSON.parse(out.trim().split("\n").pop()!) as RunnerResult), wallSeconds: (performance.now() - t0) / 1000 });
    });
  });
}

const root = await mkdtemp(join(args.dir ?? tmpdir(), "mla-edge-bench-convert-"));
try {
  const fs = await statfs(root);
  log(`generating a ${size}-shaped bf16 checkpoint (${layers} layers) in ${root} (${((fs.bavail * fs.bsize) / 1e9).toFixed(0)} GB free)\n`);
  const g0 = performance.now();
  const srcBytes = await generate(join(root, "model"));
  const generateSeconds = (performance.now() - g0) / 1000;
  log(`generated ${(srcBytes / 1e9).toFixed(2)} GB in ${generateSeconds.toFixed(1)} s\n`);
  const hidden = base.hidden_size;
  const per = (r: RunnerResult) => ({
    ...Object.fromEntries(Object.entries(r.layerPhases).map(([k, s]) => [k, s / r.layers])),
    total: r.layerSeconds.reduce((a, b) => a + b, 0) / r.layers,
  });
  const outside = (r: RunnerResult) => Object.fromEntries(Object.entries(r.phases).map(([k, s]) => [k, s - r.layerPhases[k]]));
  const dataFree = await runConversion({ modelDir: join(root, "model"), outDir: join(root, "out-data-free"), options: { strategy: "high", ropeDims: 32, svd: "joint", dKv: 64 }, calibTokens: 0, hidden, imagePad: base.image_token_id });
  await rm(join(root, "out-data-free"), { recursive: true, force: true });
  const result: Record<string, unknown> = {
    bench: "convert",
    modelSize: size,
    layers,
    cpus: cpus().length,
    node: process.version,
    sourceBytes: srcBytes,
    generateSeconds,
    dataFree: {
      setting: "high + joint SVD, d_kv 64, rope dims 32, bf16 out",
      wallSeconds: dataFree.wallSeconds,
      peakRssBytes: Math.max(dataFree.maxRssBytes, dataFree.vmHwmBytes ?? 0),
      secondsPerLayer: per(dataFree),
      secondsOutsideLayers: outside(dataFree),
      bytesWritten: dataFree.bytesWritten,
      files: dataFree.files,
      targets: { wallSeconds: TARGET_S, peakRssBytes: TARGET_RSS, met: dataFree.wallSeconds <= TARGET_S && Math.max(dataFree.maxRssBytes, dataFree.vmHwmBytes ?? 0) <= TARGET_RSS },
    },
  };
  if (calibTokens > 0) {
    const cal = await runConversion({ modelDir: join(root, "model"), outDir: join(root, "out-calib"), options: { strategy: "mkl", ropeDims: 32, svd: "md", dKv: 64 }, calibTokens, hidden, imagePad: base.image_token_id });
    await rm(join(root, "out-calib"), { recursive: true, force: true });
    result.calibrated = {
      setting: `mkl + MD-SVD, d_kv 64, rope dims 32, ${calibTokens} synthetic calibration tokens, bf16 out`,
      wallSeconds: cal.wallSeconds,
      peakRssBytes: Math.max(cal.maxRssBytes, cal.vmHwmBytes ?? 0),
      secondsPerLayer: per(cal),
      secondsOutsideLayers: outside(cal),
      bytesWritten: cal.bytesWritten,
      calibrationTokens: cal.calibrationTokens,
    };
  }
  if (args.json) process.stdout.write(JSON.stringify(result) + "\n");
  else process.stdout.write(JSON.stringify(result, null, 2) + "\n");
} finally {
  await rm(root, { recursive: true, force: true });
}
