// The browser bundle's manifest (manifest.json): types, and parse + validate with typed errors. Browser-safe.
// Format described in docs/bundle.md. A bundle is manifest.json + side files (tokenizer, chat template, preprocessor
// config) + weight shards `weights-NNNNN.bin` of at most 64 MiB, each a plain concatenation of 256-byte-aligned pieces.

import type { NBits, QuantBlock } from "./matmul-nbits.ts";
import { MlaError } from "../../format/errors.ts";

export const BUNDLE_FORMAT = "mla-edge-bundle";
export const BUNDLE_VERSION = 1;
/** Every piece starts at a multiple of this within its shard (WebGPU storage-buffer offset alignment is 256). */
export const BUNDLE_ALIGN = 256;
export const MAX_SHARD_BYTES = 64 * 1024 * 1024;
export const MANIFEST_FILE = "manifest.json";

export type WeightFormat = "int4" | "int8" | "f16";
export type VisionFormat = "int8" | "f16";
export type PlainDtype = "f32" | "f16" | "i32";

/** A run of rows [rowStart, rowEnd) of one array, stored at `offset` in shard `shard`. */
export interface BundlePiece {
  readonly shard: number;
  readonly offset: number;
  readonly byteLength: number;
  readonly rowStart: number;
  readonly rowEnd: number;
}

/** One stored array (weights, scales, zero points or a plain tensor): its row geometry and where its pieces are. */
export interface BundleArray {
  /** Rows of the array (the first dimension); a piece never splits a row. */
  readonly rows: number;
  readonly rowBytes: number;
  readonly pieces: readonly BundlePiece[];
}

/** A Linear (or embedding) weight [N, K] in MatMulNBits layout. */
export interface QuantizedTensorEntry {
  readonly name: string;
  readonly kind: "matmul_nbits";
  /** [N = out, K = in] of the original weight. */
  readonly shape: readonly [number, number];
  readonly bits: NBits;
  readonly block: QuantBlock;
  readonly kBlocks: number;
  readonly blobSize: number;
  /** uint8 [N, kBlocks, blobSize] */
  readonly b: BundleArray;
  /** f16 [N, kBlocks] */
  readonly scales: BundleArray;
  /** uint8 [N, ceil(kBlocks/2)] (4-bit) or [N, kBlocks] (8-bit); null → symmetric, zero point 2^(bits−1). */
  readonly zeroPoints: BundleArray | null;
}

/** Any other tensor stored as is (norms, biases, conv weights, integer tables), little-endian. */
export interface PlainTensorEntry {
  readonly name: string;
  readonly kind: "plain";
  readonly shape: readonly number[];
  readonly dtype: PlainDtype;
  readonly data: BundleArray;
}

export type BundleTensorEntry = QuantizedTensorEntry | PlainTensorEntry;

export interface BundleShard {
  readonly file: string;
  readonly size: number;
  /** Lowercase hex SHA-256 of the whole file. */
  readonly sha256: string;
}

/** A side file copied into the bundle (tokenizer, template, preprocessor config, …). */
export interface BundleFile {
  readonly file: string;
  readonly size: number;
  readonly sha256: string;
}

export interface BundleManifest {
  readonly format: typeof BUNDLE_FORMAT;
  readonly version: number;
  /** config.json of the packed checkpoint, unchanged. */
  readonly config: Readonly<Record<string, unknown>>;
  readonly tokenizer: {
    readonly tokenizer: string | null;
    readonly tokenizerConfig: string | null;
    readonly chatTemplate: string | null;
  };
  /** preprocessor_config.json inline (null when the checkpoint has none), its file also listed in `files`. */
  readonly preprocessorConfig: Readonly<Record<string, unknown>> | null;
  readonly quantization: {
    readonly weights: WeightFormat;
    readonly block: QuantBlock;
    readonly zeroPoints: boolean;
    readonly vision: VisionFormat;
    readonly norms: "f32" | "f16";
  };
  /** Tensor names that are stored once under another name (a tied LM head → the embedding). */
  readonly aliases: Readonly<Record<string, string>>;
  readonly tensors: readonly BundleTensorEntry[];
  readonly shards: readonly BundleShard[];
  readonly files: readonly BundleFile[];
}

export type BundleErrorCode = "bad_manifest" | "unsupported_version" | "hash_mismatch" | "size_mismatch" | "fetch_failed" | "missing_tensor" | "aborted";

/** A manifest that does not validate, or a bundle whose bytes do not match it. `code` is stable. */
export class BundleError extends MlaError<BundleErrorCode> {
  override readonly name = "BundleError";
  constructor(
    code: BundleErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
const isNat = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
const isHex64 = (v: unknown): v is string => typeof v === "string" && /^[0-9a-f]{64}$/.test(v);
const isSafeFile = (v: unknown): v is string => typeof v === "string" && /^[A-Za-z0-9._-]+$/.test(v) && !v.startsWith(".");

function fail(where: string, what: string): never {
  throw new BundleError("bad_manifest", `manifest: ${where}: ${what}`);
}

function checkArray(v: unknown, where: string, shards: readonly BundleShard[], rows: number, rowBytes: number): BundleArray {
  if (!isObj(v)) fail(where, "must be an object");
  if (v.rows !== rows) fail(where, `rows ${String(v.rows)}, expected ${rows}`);
  if (v.rowBytes !== rowBytes) fail(where, `rowBytes ${String(v.rowBytes)}, expected ${rowBytes}`);
  if (!Array.isArray(v.pieces) || (v.pieces.length === 0 && rows * rowBytes > 0)) fail(where, "pieces must be a non-empty array");
  let next = 0;
  const pieces: BundlePiece[] = [];
  for (const [i, p] of (v.pieces as unknown[]).entries()) {
    const w = `${where}.pieces[${i}]`;
    if (!isObj(p) || !isNat(p.shard) || !isNat(p.offset) || !isNat(p.byteLength) || !isNat(p.rowStart) || !isNat(p.rowEnd)) {
      fail(w, "needs integer shard, offset, byteLength, rowStart, rowEnd");
    }
    if (p.rowStart !== next || p.rowEnd <= p.rowStart) fail(w, `rows [${p.rowStart}, ${p.rowEnd}) do not continue at row ${next}`);
    if (p.byteLength !== (p.rowEnd - p.rowStart) * rowBytes) fail(w, `byteLength ${p.byteLength} ≠ rows × rowBytes`);
    if (p.offset % BUNDLE_ALIGN !== 0) fail(w, `offset ${p.offset} is not ${BUNDLE_ALIGN}-byte aligned`);
    const shard = shards[p.shard];
    if (shard === undefined) fail(w, `shard ${p.shard} does not exist`);
    if (p.offset + p.byteLength > shard.size) fail(w, `runs past the end of ${shard.file} (${shard.size} bytes)`);
    next = p.rowEnd;
    pieces.push({ shard: p.shard, offset: p.offset, byteLength: p.byteLength, rowStart: p.rowStart, rowEnd: p.rowEnd });
  }
  if (next !== rows) fail(where, `pieces cover ${next} of ${rows} rows`);
  return { rows, rowBytes, pieces };
}

const PLAIN_BYTES: Readonly<Record<PlainDtype, number>> = { f32: 4, f16: 2, i32: 4 };

function checkTensor(v: unknown, i: number, shards: readonly BundleShard[]): BundleTensorEntry {
  const where = `tensors[${i}]`;
  if (!isObj(v) || typeof v.name !== "string" || v.name.length === 0) fail(where, "needs a name");
  const w = `tensor ${v.name}`;
  // A dimension may be 0: an MLA conversion that keeps every RoPE pair has an empty W_uk ([0, D_c]) and its bias.
  if (!Array.isArray(v.shape) || !v.shape.every((d) => isNat(d))) fail(w, "shape must be non-negative integers");
  const shape = v.shape as number[];
  if (v.kind === "matmul_nbits") {
    if (shape.length !== 2) fail(w, "a quantized tensor is 2-D [N, K]");
    const [n, k] = shape;
    if (v.bits !== 4 && v.bits !== 8) fail(w, "bits must be 4 or 8");
    if (v.block !== 32 && v.block !== 64 && v.block !== 128) fail(w, "block must be 32, 64 or 128");
    const kBlocks = Math.ceil(k / v.block);
    const blobSize = (v.block * v.bits) / 8;
    if (v.kBlocks !== kBlocks || v.blobSize !== blobSize) fail(w, `kBlocks/blobSize must be ${kBlocks}/${blobSize}`);
    const zpRow = v.bits === 4 ? Math.ceil(kBlocks / 2) : kBlocks;
    return {
      name: v.name,
      kind: "matmul_nbits",
      shape: [n, k],
      bits: v.bits,
      block: v.block,
      kBlocks,
      blobSize,
      b: checkArray(v.b, `${w}.b`, shards, n, kBlocks * blobSize),
      scales: checkArray(v.scales, `${w}.scales`, shards, n, kBlocks * 2),
      zeroPoints: v.zeroPoints === null || v.zeroPoints === undefined ? null : checkArray(v.zeroPoints, `${w}.zeroPoints`, shards, n, zpRow),
    };
  }
  if (v.kind === "plain") {
    if (v.dtype !== "f32" && v.dtype !== "f16" && v.dtype !== "i32") fail(w, "dtype must be f32, f16 or i32");
    const rows = shape.length === 0 ? 1 : shape[0];
    const rowBytes = (shape.slice(1).reduce((a, b) => a * b, 1) * PLAIN_BYTES[v.dtype]);
    return { name: v.name, kind: "plain", shape, dtype: v.dtype, data: checkArray(v.data, `${w}.data`, shards, rows, rowBytes) };
  }
  fail(w, `unknown kind ${JSON.stringify(v.kind)}`);
}

function checkFileEntry(v: unknown, where: string): BundleFile {
  if (!isObj(v) || !isSafeFile(v.file) || !isNat(v.size) || !isHex64(v.sha256)) fail(where, "needs a plain file name, integer size and hex sha256");
  return { file: v.file, size: v.size, sha256: v.sha256 };
}

/** Validates a parsed manifest.json; throws BundleError("bad_manifest" | "unsupported_version") naming the field. */
export function parseBundleManifest(json: unknown): BundleManifest {
  if (!isObj(json)) fail("root", "must be a JSON object");
  if (json.format !== BUNDLE_FORMAT) fail("format", `must be "${BUNDLE_FORMAT}"`);
  if (json.version !== BUNDLE_VERSION) {
    throw new BundleError("unsupported_version", `manifest: version ${String(json.version)} is not supported (this reader knows ${BUNDLE_VERSION})`);
  }
  if (!isObj(json.config)) fail("config", "must be an object");
  if (!Array.isArray(json.shards)) fail("shards", "must be an array");
  const shards = json.shards.map((s, i) => {
    const f = checkFileEntry(s, `shards[${i}]`);
    if (f.size > MAX_SHARD_BYTES) fail(`shards[${i}]`, `${f.size} bytes is over the ${MAX_SHARD_BYTES}-byte shard limit`);
    return f;
  });
  const files = Array.isArray(json.files) ? json.files.map((f, i) => checkFileEntry(f, `files[${i}]`)) : fail("files", "must be an array");
  const fileNames = new Set(files.map((f) => f.file));
  const tok = json.tokenizer;
  if (!isObj(tok)) fail("tokenizer", "must be an object");
  const ref = (key: string): string | null => {
    const v = tok[key];
    if (v === null || v === undefined) return null;
    if (typeof v !== "string" || !fileNames.has(v)) fail(`tokenizer.${key}`, `${JSON.stringify(v)} is not one of the bundle's files`);
    return v;
  };
  const q = json.quantization;
  if (!isObj(q)) fail("quantization", "must be an object");
  if (q.weights !== "int4" && q.weights !== "int8" && q.weights !== "f16") fail("quantization.weights", "must be int4, int8 or f16");
  if (q.block !== 32 && q.block !== 64 && q.block !== 128) fail("quantization.block", "must be 32, 64 or 128");
  if (q.vision !== "int8" && q.vision !== "f16") fail("quantization.vision", "must be int8 or f16");
  if (q.norms !== "f32" && q.norms !== "f16") fail("quantization.norms", "must be f32 or f16");
  if (!Array.isArray(json.tensors)) fail("tensors", "must be an array");
  const tensors = json.tensors.map((t, i) => checkTensor(t, i, shards));
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) fail(`tensor ${t.name}`, "listed twice");
    names.add(t.name);
  }
  const aliases: Record<string, string> = {};
  if (!isObj(json.aliases)) fail("aliases", "must be an object");
  for (const [from, to] of Object.entries(json.aliases)) {
    if (typeof to !== "string" || !names.has(to)) fail(`aliases.${from}`, `target ${JSON.stringify(to)} is not a tensor`);
    if (names.has(from)) fail(`aliases.${from}`, "is also a stored tensor");
    aliases[from] = to;
  }
  const pre = json.preprocessorConfig;
  if (pre !== null && pre !== undefined && !isObj(pre)) fail("preprocessorConfig", "must be an object or null");
  return {
    format: BUNDLE_FORMAT,
    version: BUNDLE_VERSION,
    config: json.config,
    tokenizer: { tokenizer: ref("tokenizer"), tokenizerConfig: ref("tokenizerConfig"), chatTemplate: ref("chatTemplate") },
    preprocessorConfig: (pre ?? null) as Record<string, unknown> | null,
    quantization: { weights: q.weights, block: q.block, zeroPoints: q.zeroPoints === true, vision: q.vision, norms: q.norms },
    aliases,
    tensors,
    shards,
    files,
  };
}

/** The entry of a tensor, following an alias (e.g. lm_head.weight → the embedding when tied). */
export function findBundleTensor(m: BundleManifest, name: string): BundleTensorEntry {
  const target = m.aliases[name] ?? name;
  const t = m.tensors.find((e) => e.name === target);
  if (t === undefined) throw new BundleError("missing_tensor", `bundle has no tensor ${name}`);
  return t;
}

/** Sum of shard sizes: what a cold load downloads besides the manifest and side files. */
export const bundleWeightBytes = (m: BundleManifest): number => m.shards.reduce((s, x) => s + x.size, 0);
