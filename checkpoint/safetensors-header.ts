// Pure parsing of the safetensors header: 8-byte little-endian length, then a JSON table of tensors and byte ranges.

import { CheckpointError } from "./errors.ts";
import { DTYPE_BYTES, isSafetensorsDtype, type SafetensorsDtype } from "./dtype.ts";

/** Headers above this size are treated as corrupt (the reference implementation caps at 100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;

/** One tensor of a safetensors file. `begin`/`end` are absolute byte offsets in the file. */
export interface TensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  readonly begin: number;
  readonly end: number;
}

export interface SafetensorsHeader {
  /** Offset of the first data byte: 8 + header length. */
  readonly dataStart: number;
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  readonly metadata: Readonly<Record<string, string>>;
}

export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Reads the header length from the first 8 bytes of a file. */
export function headerLength(prefix: Uint8Array, label: string): number {
  if (prefix.byteLength < 8) {
    throw new CheckpointError("bad_header", `${label}: file is ${prefix.byteLength} bytes, shorter than the 8-byte header length`);
  }
  const view = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const n = Number(view.getBigUint64(0, true));
  if (n < 2 || n > MAX_HEADER_BYTES) {
    throw new CheckpointError("bad_header", `${label}: header length ${n} is outside [2, ${MAX_HEADER_BYTES}]`);
  }
  return n;
}

/**
 * Parses the JSON header (the `length` bytes after the 8-byte prefix). `fileSize`, when known, bounds every data range.
 * Every entry is checked: known dtype, non-negative integer shape, and a byte range of exactly numel × element size.
 */
export function parseSafetensorsHeader(json: Uint8Array, label: string, fileSize?: number): SafetensorsHeader {
  const dataStart = 8 + json.byteLength;
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(json));
  } catch (e) {
    throw new CheckpointError("bad_header", `${label}: header is not valid UTF-8 JSON (${(e as Error).message})`, { cause: e });
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new CheckpointError("bad_header", `${label}: header must be a JSON object`);
  }
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  const dataBytes = fileSize === undefined ? Infinity : fileSize - dataStart;
  if (dataBytes < 0) throw new CheckpointError("bad_header", `${label}: header runs past the end of the file`);
  for (const [name, entry] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (entry === null || typeof entry !== "object" || Array.isArray(entry)) {
        throw new CheckpointError("bad_header", `${label}: __metadata__ must be an object of strings`);
      }
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== "string") throw new CheckpointError("bad_header", `${label}: __metadata__.${k} is not a string`);
      }
      metadata = entry as Record<string, string>;
      continue;
    }
    if (entry === null || typeof entry !== "object") {
      throw new CheckpointError("bad_header", `${label}: entry ${name} is not an object`);
    }
    const { dtype, shape, data_offsets: offsets } = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!isSafetensorsDtype(dtype)) {
      throw new CheckpointError("unsupported_dtype", `${label}: tensor ${name} has unknown dtype ${JSON.stringify(dtype)}`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new CheckpointError("bad_header", `${label}: tensor ${name} has an invalid shape ${JSON.stringify(shape)}`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new CheckpointError("bad_header", `${label}: tensor ${name} has invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const [b, e] = offsets as [number, number];
    const expected = elementCount(shape as number[]) * DTYPE_BYTES[dtype];
    if (e < b || e - b !== expected) {
      throw new CheckpointError(
        "bad_header",
        `${label}: tensor ${name} spans ${e - b} bytes but ${dtype}${JSON.stringify(shape)} needs ${expected}`,
      );
    }
    if (e > dataBytes) {
      throw new CheckpointError("bad_header", `${label}: tensor ${name} ends at data byte ${e}, past the data size ${dataBytes}`);
    }
    tensors.set(name, { name, dtype, shape: shape as number[], begin: dataStart + b, end: dataStart + e });
  }
  return { dataStart, tensors, metadata };
}
