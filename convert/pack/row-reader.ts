// Lazy row-range reads of a checkpoint folder's tensors (Node): only headers and file handles are held, and a tensor is
// read a few MiB of rows at a time, so packing a 7B checkpoint never holds the model (nor one whole f32 tensor).

import { readdir, stat, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { ByteSource } from "../../checkpoint/byte-source.ts";
import { decodeFloat32, decodeInt32, DTYPE_BYTES } from "../../checkpoint/dtype.ts";
import { openFileByteSource } from "../../checkpoint/io.node.ts";
import { SafetensorsFile } from "../../checkpoint/safetensors-file.ts";
import type { TensorInfo } from "../../checkpoint/safetensors-header.ts";
import { parseShardIndex } from "../../checkpoint/sharded-source.ts";
import { PackError } from "./errors.ts";

export interface RowTensor {
  readonly name: string;
  readonly info: TensorInfo;
  /** The safetensors file it comes from, relative to the folder. */
  readonly file: string;
}

export class RowReader {
  private constructor(
    private readonly tensors: ReadonlyMap<string, { info: TensorInfo; src: ByteSource; file: string }>,
    private readonly sources: readonly ByteSource[],
  ) {}

  /**
   * The folder's weight files: the index's shards when `model.safetensors.index.json` exists, else `model.safetensors`;
   * plus `visual.safetensors` (the fixture's separate vision tower) when present. Other *.safetensors (e.g. reference
   * logits) are not weights and are ignored unless nothing else exists.
   */
  static async open(dir: string): Promise<RowReader> {
    const exists = (p: string) => stat(p).then(() => true, () => false);
    let files: string[];
    const indexPath = join(dir, "model.safetensors.index.json");
    if (await exists(indexPath)) {
      let json: unknown;
      try {
        json = JSON.parse(await readFile(indexPath, "utf8"));
      } catch (e) {
        throw new PackError("io", `${indexPath}: cannot read the shard index: ${(e as Error).message}`, { cause: e });
      }
      files = [...new Set(parseShardIndex(json, indexPath).weightMap.values())].sort();
    } else if (await exists(join(dir, "model.safetensors"))) {
      files = ["model.safetensors"];
    } else {
      files = (await readdir(dir)).filter((f) => f.endsWith(".safetensors") && f !== "visual.safetensors").sort();
    }
    if (await exists(join(dir, "visual.safetensors"))) files.push("visual.safetensors");
    if (files.length === 0) throw new PackError("missing_tensor", `${dir}: no safetensors weights found`);
    const tensors = new Map<string, { info: TensorInfo; src: ByteSource; file: string }>();
    const sources: ByteSource[] = [];
    try {
      for (const f of files) {
        const src = await openFileByteSource(join(dir, f));
        sources.push(src);
        const st = await SafetensorsFile.open(src);
        for (const name of st.names()) {
          const prev = tensors.get(name);
          if (prev) throw new PackError("io", `${dir}: tensor ${name} is in both ${prev.file} and ${f}`);
          tensors.set(name, { info: st.info(name), src, file: f });
        }
      }
    } catch (e) {
      await Promise.all(sources.map((s) => s.close()));
      throw e;
    }
    return new RowReader(tensors, sources);
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  tensor(name: string): RowTensor {
    const t = this.tensors.get(name);
    if (!t) throw new PackError("missing_tensor", `missing tensor ${name}`);
    return { name, info: t.info, file: t.file };
  }

  /** Rows [r0, r1) of a float tensor as f32 (its first dimension is the row axis; a 1-D tensor is one row). */
  async readFloatRows(name: string, r0: number, r1: number): Promise<Float32Array> {
    const { bytes, count, t } = await this.rowBytes(name, r0, r1);
    return decodeFloat32(bytes, t.info.dtype, count, `${t.file}: ${name}`);
  }

  async readIntRows(name: string, r0: number, r1: number): Promise<Int32Array> {
    const { bytes, count, t } = await this.rowBytes(name, r0, r1);
    return decodeInt32(bytes, t.info.dtype, count, `${t.file}: ${name}`);
  }

  private async rowBytes(name: string, r0: number, r1: number) {
    const t = this.tensors.get(name);
    if (!t) throw new PackError("missing_tensor", `missing tensor ${name}`);
    const rowElems = t.info.shape.slice(1).reduce((a, b) => a * b, 1);
    const eb = DTYPE_BYTES[t.info.dtype];
    const count = (r1 - r0) * rowElems;
    const bytes = await t.src.read(t.info.begin + r0 * rowElems * eb, count * eb);
    return { bytes, count, t };
  }

  async close(): Promise<void> {
    await Promise.all(this.sources.map((s) => s.close()));
  }
}
