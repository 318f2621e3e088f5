// Re-verification of a chunk read back for a restore: CRC-32C over the chunk (readChunkHeader), the session's spec
// hash and the range the ref promises. A failure is ApiError(500, corrupt_chunk), never data sent to the client.
import { readChunkHeader } from "../../format/chunk/decode.ts";
import { ChunkError } from "../../format/chunk/types.ts";
import { hashesEqual } from "../../format/hash/spec-hash.ts";
import { workerCodec } from "../codec.ts";
import { ApiError } from "../errors.ts";
import type { ChunkRef } from "../objects/session-types.ts";

export const describeRef = (ref: ChunkRef): string =>
  `chunk ${ref.key} (tokens ${ref.tokenStart}+${ref.tokenCount}, layers ${ref.layerStart}+${ref.layerCount})`;

/** Returns `bytes` when they are the chunk `ref` names for a session of `specHash`; throws corrupt_chunk otherwise. */
export function verifyStoredChunk(bytes: Uint8Array | null, ref: ChunkRef, specHash: Uint8Array): Uint8Array {
  const where = describeRef(ref);
  if (bytes === null) throw new ApiError(500, "corrupt_chunk", `${where} is missing from storage`, "missing");
  try {
    // CRC-32C over the whole chunk (readChunkHeader, with the WASM codec's CRC) proves the bytes are the ones verifyChunk
    // accepted at upload, so the payload value checks are not repeated here; the spec hash and the range must still be
    // the session's.
    const h = readChunkHeader(bytes, workerCodec().crc32c);
    if (!hashesEqual(h.specHash, specHash)) throw new ApiError(500, "corrupt_chunk", `${where}: stored row names another spec`, "spec_mismatch");
    if (h.tokenStart !== ref.tokenStart || h.tokenCount !== ref.tokenCount || h.layerStart !== ref.layerStart || h.layerCount !== ref.layerCount) {
      throw new ApiError(500, "corrupt_chunk", `${where}: stored row describes another range`, "range_mismatch");
    }
  } catch (e) {
    if (e instanceof ChunkError) throw new ApiError(500, "corrupt_chunk", `${where} failed verification: ${e.message}`, e.code);
    throw e;
  }
  return bytes;
}
