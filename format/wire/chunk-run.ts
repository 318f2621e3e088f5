// A chunk run: packed chunks back to back in one frame payload (FrameType.chunks). Chunks are self-delimiting (the
// fixed header's byteLength), so a run needs no index; splitting reads only the magic and the length of each chunk and
// leaves every other check to the chunk reader (readChunkHeader / decodeChunk) that consumes the pieces.
import { CHUNK_MAGIC, FIXED_HEADER_BYTES } from "../chunk/constants.ts";
import { HEADER_OFFSETS } from "../chunk/header.ts";
import { ChunkError, MAX_CHUNK_BYTES } from "../chunk/types.ts";

/** The chunks of a run, as views into `payload` (no copy), in order. Throws ChunkError when a chunk does not fit. */
export function splitChunkRun(payload: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  let at = 0;
  while (at < payload.length) {
    const left = payload.length - at;
    if (left < FIXED_HEADER_BYTES) throw new ChunkError("truncated", `chunk run: ${left} bytes after chunk ${out.length}, less than a chunk header`);
    for (let i = 0; i < CHUNK_MAGIC.length; i++) {
      if (payload[at + i] !== CHUNK_MAGIC[i]) throw new ChunkError("bad_magic", `chunk run: chunk ${out.length} at byte ${at} does not start with "MLAC"`);
    }
    const length = view.getUint32(at + HEADER_OFFSETS.byteLength, true);
    if (length < FIXED_HEADER_BYTES || length > MAX_CHUNK_BYTES) {
      throw new ChunkError("invalid_header", `chunk run: chunk ${out.length} declares ${length} bytes`);
    }
    if (length > left) throw new ChunkError("truncated", `chunk run: chunk ${out.length} declares ${length} bytes, ${left} left`);
    out.push(payload.subarray(at, at + length));
    at += length;
  }
  return out;
}
