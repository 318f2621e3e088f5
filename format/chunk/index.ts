// Public API of the chunk wire format (docs/chunk-format.md).
export * from "./constants.ts";
export * from "./types.ts";
export { chunkLayout, geometryOfSpec, type ChunkLayout, type BlockLayout } from "./layout.ts";
export { encodeChunk, checkChunkCodec } from "./encode.ts";
export { decodeChunk, readChunkHeader, verifyChunk } from "./decode.ts";
export { packChunk, unpackChunk, type ChunkInput, type LayerValues, type UnpackedChunk } from "./pack.ts";
export { planChunkLayerRanges, plannedChunkBytes, type LayerRange } from "./plan.ts";
