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
    if (bytes.byteLength !== rows * rowBytes) throw new PackError("io", `${label}: ${bytes.byteLength} bytes for ${rows} rows of ${rowBytes}`);
    if (rowBytes > this.maxShardBytes) {
      throw new PackError("row_too_large", `${label}: one row is ${rowBytes} bytes, more than a ${this.maxShardBytes}-byte shard`);
    }
    const pieces: BundlePiece[] = [];
    let r = 0;
    while (r < rows) {
      if (this.handle === null) await this.startShard();
      const offset = Math.ceil(this.size / BUNDLE_ALIGN) * BUNDLE_ALIGN;
      const fit = Math.max(0, Math.floor((this.maxShardBytes - offset) / rowBytes));
      const left = rows - r;
      const wholeFitsFresh = left * rowBytes <= this.maxShardBytes;
      if (fit < left && (fit === 0 || (wholeFitsFresh && this.size > 0))) {
        await this.endShard();
        continue;
      }
      const take = Math.min(fit, left);
      await this.padTo(offset);
      await this.write(bytes.subarray(r * rowBytes, (r + take) * rowBytes));
      pieces.push({ shard: this.shards.length, offset, byteLength: take * rowBytes, rowStart: r, rowEnd: r + take });
      r += take;
    }
    return { rows, rowBytes, pieces };
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
