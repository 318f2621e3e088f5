// Random-access byte sources behind a safetensors file: an in-memory buffer here; Node file handles in io.node.ts;
// a browser can implement the same interface over fetch() Range requests.

import { CheckpointError } from "./errors.ts";

/** Reads byte ranges of one file on demand, so a checkpoint is never loaded whole. */
export interface ByteSource {
  /** Human-readable origin (a path or URL), used in error messages. */
  readonly label: string;
  /** Total size in bytes. */
  readonly size: number;
  /** Exactly `length` bytes starting at `offset`; throws CheckpointError("io") if the range is outside the file. */
  read(offset: number, length: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** A ByteSource over bytes already in memory (fetched whole, or built by the writer). Views, not copies. */
export function bufferByteSource(bytes: ArrayBuffer | Uint8Array, label = "<buffer>"): ByteSource {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  return {
    label,
    size: view.byteLength,
    read(offset: number, length: number): Promise<Uint8Array> {
      if (offset < 0 || length < 0 || offset + length > view.byteLength) {
        return Promise.reject(
          new CheckpointError("io", `${label}: read of ${length} bytes at ${offset} is outside the ${view.byteLength}-byte buffer`),
        );
      }
      return Promise.resolve(view.subarray(offset, offset + length));
    },
    close: () => Promise.resolve(),
  };
}
