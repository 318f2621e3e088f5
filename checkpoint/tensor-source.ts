// The read side of a checkpoint, independent of how it is stored: one safetensors file, a sharded set, or several merged.

import type { TensorInfo } from "./safetensors-header.ts";

/** Lazy access to named tensors. Each read returns a fresh array the caller owns. */
export interface TensorSource {
  names(): string[];
  has(name: string): boolean;
  /** Throws CheckpointError("missing_tensor") when absent. */
  info(name: string): TensorInfo;
  /** Float tensor (F32/F16/BF16/F64) as Float32Array; checks the shape when `expectShape` is given. */
  readFloat32(name: string, expectShape?: readonly number[]): Promise<Float32Array>;
  /** The tensor's stored little-endian bytes, undecoded (for pass-through copies). */
  readBytes(name: string): Promise<Uint8Array>;
  /** Integer tensor (I32/I64/I16/I8/U8/BOOL) as Int32Array. */
  readInt32(name: string, expectShape?: readonly number[]): Promise<Int32Array>;
  close(): Promise<void>;
}
