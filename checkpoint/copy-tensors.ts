// Lazy pass-through of tensors from a source checkpoint into a writer (vision tower, embeddings, MLP of a converted model).

import type { WritableDtype } from "./dtype.ts";
import type { TensorToWrite } from "./safetensors-writer.ts";
import type { TensorSource } from "./tensor-source.ts";

/**
 * Writer entries that read each tensor from `source` only when written. Float tensors keep their dtype (F64 becomes F32)
 * unless `dtype` is given; integer tensors are written as I32. A tensor whose dtype does not change is copied as raw
 * bytes, never decoded (a 7B embedding stays 1 GB of bf16 instead of 2 GB of f32).
 */
export function copyTensors(source: TensorSource, names: readonly string[], dtype?: Exclude<WritableDtype, "I32">): TensorToWrite[] {
  return names.map((name): TensorToWrite => {
    const info = source.info(name);
    const isFloat = info.dtype === "F32" || info.dtype === "F16" || info.dtype === "BF16" || info.dtype === "F64";
    const out: WritableDtype = isFloat ? (dtype ?? (info.dtype === "F64" ? "F32" : (info.dtype as WritableDtype))) : "I32";
    if (out === info.dtype) return { name, dtype: out, shape: info.shape, data: () => source.readBytes(name) };
    if (!isFloat) return { name, dtype: "I32", shape: info.shape, data: () => source.readInt32(name) };
    return { name, dtype: out, shape: info.shape, data: () => source.readFloat32(name) };
  });
}
