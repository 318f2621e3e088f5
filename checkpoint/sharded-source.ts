// Several safetensors files seen as one TensorSource: an HF sharded index (model.safetensors.index.json) or a plain merge.

import { CheckpointError } from "./errors.ts";
import type { SafetensorsFile } from "./safetensors-file.ts";
import type { TensorInfo } from "./safetensors-header.ts";
import type { TensorSource } from "./tensor-source.ts";

/** Parsed `model.safetensors.index.json`. */
export interface ShardIndex {
  readonly metadata: Readonly<Record<string, unknown>>;
  /** Tensor name → shard file name (relative to the index). */
  readonly weightMap: ReadonlyMap<string, string>;
}

export function parseShardIndex(json: unknown, label: string): ShardIndex {
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new CheckpointError("bad_index", `${label}: index must be a JSON object`);
  }
  const { weight_map: wm, metadata } = json as { weight_map?: unknown; metadata?: unknown };
  if (wm === null || typeof wm !== "object" || Array.isArray(wm)) {
    throw new CheckpointError("bad_index", `${label}: index has no weight_map object`);
  }
  const weightMap = new Map<string, string>();
  for (const [name, file] of Object.entries(wm as Record<string, unknown>)) {
    if (typeof file !== "string" || file.length === 0 || file.includes("..") || file.startsWith("/")) {
      throw new CheckpointError("bad_index", `${label}: weight_map.${name} must be a shard file name, got ${JSON.stringify(file)}`);
    }
    weightMap.set(name, file);
  }
  return { metadata: (metadata ?? {}) as Record<string, unknown>, weightMap };
}

/**
 * Tensors spread over files, each tensor read from its own file on demand. Only headers and file handles stay in
 * memory, so a sharded 7B checkpoint costs a few kilobytes until tensors are read.
 */
export class MultiFileSource implements TensorSource {
  private constructor(
    private readonly files: ReadonlyMap<string, SafetensorsFile>,
    private readonly location: ReadonlyMap<string, string>,
    private readonly label: string,
  ) {}

  /** Merges open files; a tensor name present in two files is an error. */
  static fromFiles(files: ReadonlyMap<string, SafetensorsFile>, label: string): MultiFileSource {
    const location = new Map<string, string>();
    for (const [file, st] of files) {
      for (const name of st.names()) {
        const prev = location.get(name);
        if (prev !== undefined) {
          throw new CheckpointError("duplicate_tensor", `${label}: tensor ${name} is in both ${prev} and ${file}`);
        }
        location.set(name, file);
      }
    }
    return new MultiFileSource(files, location, label);
  }

  /**
   * Opens every shard an index names (headers only) and checks that each indexed tensor is in the shard the index
   * says. Tensors in a shard but missing from the index are still readable.
   */
  static async fromIndex(index: ShardIndex, openShard: (file: string) => Promise<SafetensorsFile>, label: string): Promise<MultiFileSource> {
    const fileNames = [...new Set(index.weightMap.values())].sort();
    const files = new Map<string, SafetensorsFile>();
    try {
      for (const f of fileNames) files.set(f, await openShard(f));
    } catch (e) {
      await Promise.all([...files.values()].map((f) => f.close()));
      throw e;
    }
    for (const [name, file] of index.weightMap) {
      if (!files.get(file)!.has(name)) {
        await Promise.all([...files.values()].map((f) => f.close()));
        throw new CheckpointError("bad_index", `${label}: index maps ${name} to ${file}, which does not contain it`);
      }
    }
    return MultiFileSource.fromFiles(files, label);
  }

  names(): string[] {
    return [...this.location.keys()];
  }

  has(name: string): boolean {
    return this.location.has(name);
  }

  info(name: string): TensorInfo {
    return this.fileFor(name).info(name);
  }

  readFloat32(name: string, expectShape?: readonly number[]): Promise<Float32Array> {
    return this.fileFor(name).readFloat32(name, expectShape);
  }

  readInt32(name: string, expectShape?: readonly number[]): Promise<Int32Array> {
    return this.fileFor(name).readInt32(name, expectShape);
  }

  readBytes(name: string): Promise<Uint8Array> {
    return this.fileFor(name).readBytes(name);
  }

  async close(): Promise<void> {
    await Promise.all([...this.files.values()].map((f) => f.close()));
  }

  private fileFor(name: string): SafetensorsFile {
    const file = this.location.get(name);
    if (file === undefined) throw new CheckpointError("missing_tensor", `${this.label}: no tensor named ${name}`);
    return this.files.get(file)!;
  }
}
