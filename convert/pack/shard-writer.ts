// Writes weight shards of at most `maxShardBytes`, each piece at a 256-byte-aligned offset, hashing as it goes.
// An array that does not fit the current shard moves to a fresh one when it fits there whole; one larger than a shard
// is split at row boundaries. Node-only (node:fs, node:crypto).

import { createHash, type Hash } from "node:crypto";
import { open, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { BUNDLE_ALIGN, type BundleArray, type BundlePiece, type BundleShard } from "../../checkpoint/bundle/manifest.ts";
import { packIoError, PackError } from "./errors.ts";

/** How a shard file is opened; tests inject faults (disk full) here. */
export type OpenShardFile = (path: string) => Promise<Pick<FileHandle, "write" | "close">>;

/** One array being written row-run by row-run (see ShardWriter.beginArray). */
export interface ArrayWriter {
  write(bytes: Uint8Array): Promise<void>;
  end(): BundleArray;
}

export const shardFileName = (i: number): string => `weights-${String(i).padStart(5, "0")}.bin`;

const defaultOpen: OpenShardFile = (path) => open(path, "wx");

export class ShardWriter {
  private readonly shards: BundleShard[] = [];
  private handle: Pick<FileHandle, "write" | "close"> | null = null;
  private hash: Hash | null = null;
  private size = 0;
  private path = "";

  constructor(
    private readonly dir: string,
    private readonly maxShardBytes: number,
    private readonly openFile: OpenShardFile = defaultOpen,
  ) {
    if (maxShardBytes % BUNDLE_ALIGN !== 0 || maxShardBytes < BUNDLE_ALIGN) {
      throw new PackError("bad_option", `shard size ${maxShardBytes} must be a positive multiple of ${BUNDLE_ALIGN}`);
    }
  }

  /** Stores `bytes` (rows × rowBytes) and returns where its pieces went. `label` names it in errors. */
  async place(bytes: Uint8Array, rows: number, rowBytes: number, label: string): Promise<BundleArray> {
    const s = await this.beginArray(rows, rowBytes, label);
    await s.write(bytes);
    return s.end();
  }

  /**
   * Starts an array of `rows` rows written in order by `write` (whole rows per call), so a big tensor streams to disk
   * without being held. Placement: whole in the current shard if it fits; else whole in a fresh shard if it fits
   * there; else split at row boundaries, filling each shard.
   */
  async beginArray(rows: number, rowBytes: number, label: string): Promise<ArrayWriter> {
    if (rowBytes > this.maxShardBytes) {
      throw new PackError("row_too_large", `${label}: one row is ${rowBytes} bytes, more than a ${this.maxShardBytes}-byte shard`);
    }
    if (this.handle === null) await this.startShard();
    let offset = Math.ceil(this.size / BUNDLE_ALIGN) * BUNDLE_ALIGN;
    const fit = Math.max(0, Math.floor((this.maxShardBytes - offset) / rowBytes));
    if (fit < rows && (fit === 0 || (rows * rowBytes <= this.maxShardBytes && this.size > 0))) {
      await this.endShard();
      await this.startShard();
      offset = 0;
    }
    const pieces: BundlePiece[] = [];
    let pieceStart = 0; // first row of the open piece
    let pieceOffset = offset;
    let written = 0; // rows written so far
    let capacity = Math.floor((this.maxShardBytes - offset) / rowBytes);
    await this.padTo(offset);
    const closePiece = () => {
      if (written > pieceStart) {
        pieces.push({ shard: this.shards.length, offset: pieceOffset, byteLength: (written - pieceStart) * rowBytes, rowStart: pieceStart, rowEnd: written });
      }
    };
    return {
      write: async (bytes: Uint8Array) => {
        if (bytes.byteLength % rowBytes !== 0) throw new PackError("io", `${label}: a write of ${bytes.byteLength} bytes is not whole ${rowBytes}-byte rows`);
        let r = 0;
        const n = bytes.byteLength / rowBytes;
        if (written + n > rows) throw new PackError("io", `${label}: more than the declared ${rows} rows`);
        while (r < n) {
          if (capacity === 0) {
            closePiece();
            await this.endShard();
            await this.startShard();
            pieceStart = written;
            pieceOffset = 0;
            capacity = Math.floor(this.maxShardBytes / rowBytes);
          }
          const take = Math.min(capacity, n - r);
          await this.write(bytes.subarray(r * rowBytes, (r + take) * rowBytes));
          r += take;
          written += take;
          capacity -= take;
        }
      },
      end: () => {
        if (written !== rows) throw new PackError("io", `${label}: ${written} of ${rows} rows written`);
        closePiece();
        return { rows, rowBytes, pieces };
      },
    };
  }

  /** Closes the last shard; returns every shard's name, size and SHA-256. */
  async finish(): Promise<BundleShard[]> {
    if (this.handle !== null) await this.endShard();
    return this.shards;
  }

  /** Closes an open file after an error (the caller removes the folder). */
  async abort(): Promise<void> {
    const h = this.handle;
    this.handle = null;
    if (h) await h.close().catch(() => undefined);
  }

  private async startShard(): Promise<void> {
    this.path = join(this.dir, shardFileName(this.shards.length));
    try {
      this.handle = await this.openFile(this.path);
    } catch (e) {
      throw packIoError(e, this.path, "creating");
    }
    this.hash = createHash("sha256");
    this.size = 0;
  }

  private async endShard(): Promise<void> {
    await this.padTo(Math.ceil(this.size / BUNDLE_ALIGN) * BUNDLE_ALIGN);
    try {
      await this.handle!.close();
    } catch (e) {
      throw packIoError(e, this.path, "closing");
    }
    const file = shardFileName(this.shards.length);
    this.shards.push({ file, size: this.size, sha256: this.hash!.digest("hex") });
    this.handle = null;
    this.hash = null;
  }

  private async padTo(offset: number): Promise<void> {
    if (offset > this.size) await this.write(new Uint8Array(offset - this.size));
  }

  private async write(bytes: Uint8Array): Promise<void> {
    let done = 0;
    try {
      while (done < bytes.byteLength) {
        const { bytesWritten } = await this.handle!.write(bytes, done, bytes.byteLength - done);
        if (bytesWritten <= 0) throw Object.assign(new Error("no bytes written"), { code: "ENOSPC" });
        done += bytesWritten;
      }
    } catch (e) {
      throw packIoError(e, this.path, "writing");
    }
    this.hash!.update(bytes);
    this.size += bytes.byteLength;
  }
}
