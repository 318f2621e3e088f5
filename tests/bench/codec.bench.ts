// Codec throughput: quantize+pack and unpack+dequantize at int8/int4/int2 over a 64 MiB float32 latent (token axis,
// group 64, rows of 256 values) for WASM SIMD, WASM scalar, the TS reference and memcpy, medians of interleaved runs.
// `npm run bench:codec -- --json` prints one JSON object on stdout; without --json, a table. GB/s = input f32 bytes / s.
import { parseArgs } from "node:util";
import { cpus } from "node:os";
import { loadNodeCodec } from "../../format/codec/wasm.node.ts";
import { referenceCodec } from "../../format/codec/reference.ts";
import { CODEC_BITS, type Bits, type Codec, type QuantizedBlock } from "../../format/codec/types.ts";
import { crc32c } from "../../format/hash/crc32c.ts";

const { values: args } = parseArgs({
  options: {
    json: { type: "boolean", default: false },
    mib: { type: "string", default: "64" },
    reps: { type: "string", default: "7" },
    warmup: { type: "string", default: "2" },
    "reference-reps": { type: "string", default: "3" },
  },
});

const COLS = 256; // a realistic latent row (D_c)
const GROUP = 64;
const BITS: readonly Bits[] = CODEC_BITS;
const inputBytes = Number(args.mib) * 2 ** 20;
const rows = inputBytes / 4 / COLS;
const reps = Number(args.reps);
const referenceReps = Number(args["reference-reps"]);
const warmup = Number(args.warmup);
if (!Number.isInteger(rows) || rows <= 0 || !(reps >= 1) || !(referenceReps >= 1)) throw new Error("bad --mib/--reps");

/** Deterministic latent-like data: sums of uniforms (≈ normal) with a per-channel scale, so groups differ. */
function makeLatent(n: number): Float32Array {
  const out = new Float32Array(n);
  let s = 0x9e3779b9;
  const next = (): number => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
  for (let i = 0; i < n; i++) out[i] = (next() + next() + next() - 1.5) * (1 + (i % COLS) / 64);
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

function timeMs(fn: () => void): number {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

function sameBlock(a: QuantizedBlock, b: QuantizedBlock): boolean {
  const eq = (x: ArrayLike<number>, y: ArrayLike<number>): boolean => x.length === y.length && Array.prototype.every.call(x, (v: number, i: number) => v === y[i]);
  return eq(a.codes, b.codes) && eq(a.scales, b.scales) && eq(a.zeros, b.zeros);
}

function sameFloats(a: Float32Array, b: Float32Array): boolean {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

interface Measurement {
  impl: string;
  bits: Bits | null;
  op: "quantize" | "dequantize" | "memcpy" | "toFp16" | "fromFp16" | "crc32c";
  medianMs: number;
  gbps: number;
  runsMs: number[];
}

const input = makeLatent(rows * COLS);
const out = new Float32Array(input.length);
const simd = loadNodeCodec({ simd: true });
const scalar = loadNodeCodec({ simd: false });
const wasmCodecs: Codec[] = [simd, scalar];
const measurements: Measurement[] = [];
const gbps = (ms: number): number => inputBytes / 1e9 / (ms / 1e3);
const record = (impl: string, bits: Bits | null, op: Measurement["op"], runsMs: number[]): void => {
  const medianMs = median(runsMs);
  measurements.push({ impl, bits, op, medianMs, gbps: gbps(medianMs), runsMs });
};
let bitIdentical = true;

// memcpy baseline: TypedArray.set of the same 64 MiB.
{
  const copy = new Float32Array(input.length);
  copy.set(input);
  const runs: number[] = [];
  for (let r = 0; r < reps; r++) runs.push(timeMs(() => copy.set(input)));
  record("memcpy", null, "memcpy", runs);
}

for (const bits of BITS) {
  // Warm-up (tier-up to optimised code, settle the heap) and the blocks the dequantize runs decode.
  const blocks = wasmCodecs.map((c) => c.quantize(input, rows, COLS, bits, GROUP, "token"));
  for (let w = 0; w < warmup; w++) {
    for (const c of wasmCodecs) {
      c.quantize(input, rows, COLS, bits, GROUP, "token");
      c.dequantize(blocks[0], out);
    }
  }
  const q: number[][] = wasmCodecs.map(() => []);
  const d: number[][] = wasmCodecs.map(() => []);
  // Interleaved, so load from other processes hits every implementation alike.
  for (let r = 0; r < reps; r++) {
    wasmCodecs.forEach((c, i) => q[i].push(timeMs(() => c.quantize(input, rows, COLS, bits, GROUP, "token"))));
    wasmCodecs.forEach((c, i) => d[i].push(timeMs(() => c.dequantize(blocks[i], out))));
  }
  wasmCodecs.forEach((c, i) => {
    record(c.kind, bits, "quantize", q[i]);
    record(c.kind, bits, "dequantize", d[i]);
  });

  let refBlock: QuantizedBlock | undefined;
  const rq: number[] = [];
  const rd: number[] = [];
  const refOut = new Float32Array(input.length);
  for (let r = 0; r < referenceReps; r++) {
    rq.push(timeMs(() => (refBlock = referenceCodec.quantize(input, rows, COLS, bits, GROUP, "token"))));
    rd.push(timeMs(() => referenceCodec.dequantize(blocks[0], refOut)));
  }
  record("reference", bits, "quantize", rq);
  record("reference", bits, "dequantize", rd);
  const simdOut = simd.dequantize(blocks[0]);
  bitIdentical &&= refBlock !== undefined && sameBlock(blocks[0], refBlock) && sameBlock(blocks[1], refBlock) && sameFloats(simdOut, refOut);
}

// fp16 blocks (rope policy fp16): float32 → fp16 (RNE) and back, same input, rows of 256.
{
  const fp16Blocks = wasmCodecs.map((c) => c.toFp16Block(input, rows, COLS));
  for (let w = 0; w < warmup; w++) for (const c of wasmCodecs) c.dequantize(c.toFp16Block(input, rows, COLS), out);
  const q: number[][] = wasmCodecs.map(() => []);
  const d: number[][] = wasmCodecs.map(() => []);
  for (let r = 0; r < reps; r++) {
    wasmCodecs.forEach((c, i) => q[i].push(timeMs(() => c.toFp16Block(input, rows, COLS))));
    wasmCodecs.forEach((c, i) => d[i].push(timeMs(() => c.dequantize(fp16Blocks[i], out))));
  }
  wasmCodecs.forEach((c, i) => {
    record(c.kind, null, "toFp16", q[i]);
    record(c.kind, null, "fromFp16", d[i]);
  });
  const rq: number[] = [];
  const rd: number[] = [];
  let refBlock: QuantizedBlock | undefined;
  for (let r = 0; r < referenceReps; r++) {
    rq.push(timeMs(() => (refBlock = referenceCodec.toFp16Block(input, rows, COLS))));
    rd.push(timeMs(() => referenceCodec.dequantize(fp16Blocks[0], out)));
  }
  record("reference", null, "toFp16", rq);
  record("reference", null, "fromFp16", rd);
  bitIdentical &&= refBlock !== undefined && sameBlock(fp16Blocks[0], refBlock) && sameBlock(fp16Blocks[1], refBlock);
}

// CRC-32C (the chunk checksum) over the same bytes: the codec's wasm against format/hash's TypeScript slicing-by-8.
let crcAgrees = true;
{
  const bytes = new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  const impls: Array<[string, (b: Uint8Array) => number]> = [
    ["wasm-simd", simd.crc32c],
    ["wasm-scalar", scalar.crc32c],
    ["typescript", (b) => crc32c(b)],
  ];
  const expected = crc32c(bytes);
  for (const [, f] of impls) crcAgrees &&= f(bytes) === expected;
  const runs: number[][] = impls.map(() => []);
  for (let r = 0; r < reps; r++) impls.forEach(([, f], i) => runs[i].push(timeMs(() => f(bytes))));
  impls.forEach(([impl], i) => record(impl, null, "crc32c", runs[i]));
}

const find = (impl: string, bits: Bits | null, op: Measurement["op"]): Measurement => {
  const m = measurements.find((x) => x.impl === impl && x.bits === bits && x.op === op);
  if (!m) throw new Error(`missing ${impl} ${bits} ${op}`);
  return m;
};
const memcpy = find("memcpy", null, "memcpy");
const ratios = Object.fromEntries(
  BITS.map((bits) => [
    `int${bits}`,
    Object.fromEntries(
      (["quantize", "dequantize"] as const).map((op) => [
        op,
        {
          simdOverReference: find("wasm-simd", bits, op).gbps / find("reference", bits, op).gbps,
          simdOverScalar: find("wasm-simd", bits, op).gbps / find("wasm-scalar", bits, op).gbps,
          simdOverMemcpy: find("wasm-simd", bits, op).gbps / memcpy.gbps,
        },
      ]),
    ),
  ]),
);
const int4q = find("wasm-simd", 4, "quantize");
const int4d = find("wasm-simd", 4, "dequantize");
const targets = {
  int4QuantizeGbps: { target: 3, actual: int4q.gbps, met: int4q.gbps >= 3 },
  int4QuantizeOverReference: { target: 10, actual: ratios.int4.quantize.simdOverReference, met: ratios.int4.quantize.simdOverReference >= 10 },
  int4DequantizeGbps: { target: 4, actual: int4d.gbps, met: int4d.gbps >= 4 },
};

const result = {
  bench: "codec",
  node: process.version,
  cpus: cpus().length,
  cpuModel: cpus()[0]?.model ?? "unknown",
  layout: { inputBytes, rows, cols: COLS, group: GROUP, axis: "token" },
  reps,
  referenceReps,
  warmup,
  bitIdentical,
  results: measurements.map(({ impl, bits, op, medianMs, gbps: g, runsMs }) => ({
    impl,
    bits,
    op,
    medianMs: Number(medianMs.toFixed(2)),
    gbps: Number(g.toFixed(3)),
    runsMs: runsMs.map((x) => Number(x.toFixed(2))),
  })),
  ratios,
  crc32c: { agrees: crcAgrees, wasmSimdOverTypescript: find("wasm-simd", null, "crc32c").gbps / find("typescript", null, "crc32c").gbps },
  targets,
};

if (args.json) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
} else {
  console.log(`codec bench: ${args.mib} MiB float32, ${rows}×${COLS}, group ${GROUP}, token axis; median of ${reps} (reference ${referenceReps}), ${warmup} warm-up`);
  console.table(result.results.map(({ impl, bits, op, medianMs, gbps: g }) => ({ impl, bits: bits ?? "", op, "median ms": medianMs, "GB/s": g })));
  console.table(Object.entries(ratios).flatMap(([b, ops]) => Object.entries(ops).map(([op, r]) => ({ bits: b, op, ...r }))));
  console.log("bit-identical (simd, scalar, reference):", bitIdentical);
  console.log("targets:", targets);
}
