// Chunk wire-format constants shared by every reader and writer (docs/chunk-format.md).

/** Version of the binary chunk layout; bumped on any incompatible change. */
export const FORMAT_VERSION = 1;
