// Node-only checkpoint I/O (node:fs): file-handle byte sources, opening checkpoint folders, streaming writers.
// Browser code imports the pure modules instead and builds a ByteSource over fetch().

import { open, readFile, readdir, rename, writeFile, mkdir, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import type { ByteSource } from "./byte-source.ts";
import { parseModelConfig, type TextModelConfig } from "./config.ts";
import { CheckpointError } from "./errors.ts";
import { SafetensorsFile } from "./safetensors-file.ts";
import { MultiFileSource, parseShardIndex } from "./sharded-source.ts";
import { encodePlannedTensor, groupIntoShards, planSafetensors, shardFileName, type TensorToWrite } from "./safetensors-writer.ts";
import type { TensorSource } from "./tensor-source.ts";

/** A ByteSource reading ranges of a file through one file handle. */
export async function openFileByteSource(path: string): Promise<ByteSource> {
  let fh;
  try {
    fh = await open(path, "r");
  } catch (e) {
    throw new CheckpointError("io", `cannot open ${path}: ${(e as Error).message}`, { cause: e });
  }
  const size = (await fh.stat()).size;
  const handle = fh;
  return {
    label: path,
    size,
    async read(offset: number, length: number): Promise<Uint8Array> {
      if (offset < 0 || length < 0 || offset + length > size) {
        throw new CheckpointError("io", `${path}: read of ${length} bytes at ${offset} is outside the ${size}-byte file`);
      }
      const buf = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await handle.read(buf, done, length - done, offset + done);
        if (bytesRead === 0) throw new CheckpointError("io", `${path}: unexpected end of file at ${offset + done}`);
        done += bytesRead;
      }
      return buf;
    },
    close: () => handle.close(),
  };
}

export async function openSafetensorsFile(path: string): Promise<SafetensorsFile> {
  const src = await openFileByteSource(path);
  try {
    return await SafetensorsFile.open(src);
  } catch (e) {
    await src.close();
    throw e;
  }
}

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    throw new CheckpointError("io", `cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CheckpointError("bad_config", `${path} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
}

/** config.json as parsed geometry plus the raw object (kept to write a converted config). */
export async function readModelConfig(path: string): Promise<{ config: TextModelConfig; raw: Record<string, unknown> }> {
  const raw = await readJson(path);
  const config = parseModelConfig(raw, path);
  return { config, raw: raw as Record<string, unknown> };
}

export interface OpenedCheckpoint {
  readonly config: TextModelConfig;
  readonly rawConfig: Record<string, unknown>;
  readonly source: TensorSource;
  /** The safetensors files behind `source`, relative to the folder. */
  readonly files: readonly string[];
}

/**
 * Opens an HF checkpoint folder lazily: `model.safetensors.index.json` if present, else `model.safetensors`, else every
 * `*.safetensors` in the folder (merged; duplicate names are an error). `extraFiles` adds files (e.g. a separate vision
 * tower) to the merged set.
 */
export async function openCheckpointDir(dir: string, options: { extraFiles?: readonly string[] } = {}): Promise<OpenedCheckpoint> {
  const { config, raw } = await readModelConfig(join(dir, "config.json"));
  const indexPath = join(dir, "model.safetensors.index.json");
  const exists = (p: string) => stat(p).then(() => true, () => false);
  let fileNames: string[];
  if (await exists(indexPath)) {
    const index = parseShardIndex(await readJson(indexPath), indexPath);
    const extra = new Map<string, SafetensorsFile>();
    for (const f of options.extraFiles ?? []) extra.set(f, await openSafetensorsFile(join(dir, f)));
    const indexed = await MultiFileSource.fromIndex(index, (f) => openSafetensorsFile(join(dir, f)), indexPath);
    fileNames = [...new Set(index.weightMap.values())].sort();
    if (extra.size === 0) return { config, rawConfig: raw, source: indexed, files: fileNames };
    return { config, rawConfig: raw, source: await mergeSources([indexed, ...extra.values()], dir), files: [...fileNames, ...extra.keys()] };
  }
  if (await exists(join(dir, "model.safetensors"))) {
    fileNames = ["model.safetensors", ...(options.extraFiles ?? [])];
  } else {
    fileNames = (await readdir(dir)).filter((f) => f.endsWith(".safetensors")).sort();
    if (fileNames.length === 0) throw new CheckpointError("io", `${dir}: no model.safetensors(.index.json) and no *.safetensors`);
  }
  const files = new Map<string, SafetensorsFile>();
  try {
    for (const f of new Set(fileNames)) files.set(f, await openSafetensorsFile(join(dir, f)));
    return { config, rawConfig: raw, source: MultiFileSource.fromFiles(files, dir), files: [...files.keys()] };
  } catch (e) {
    await Promise.all([...files.values()].map((f) => f.close()));
    throw e;
  }
}

/** Merges sources that are not necessarily single files (e.g. an indexed set plus an extra file). */
async function mergeSources(sources: readonly TensorSource[], label: string): Promise<TensorSource> {
  const owner = new Map<string, TensorSource>();
  for (const s of sources) {
    for (const n of s.names()) {
      if (owner.has(n)) throw new CheckpointError("duplicate_tensor", `${label}: tensor ${n} appears in two sources`);
      owner.set(n, s);
    }
  }
  const get = (n: string): TensorSource => {
    const s = owner.get(n);
    if (s === undefined) throw new CheckpointError("missing_tensor", `${label}: no tensor named ${n}`);
    return s;
  };
  return {
    names: () => [...owner.keys()],
    has: (n) => owner.has(n),
    info: (n) => get(n).info(n),
    readFloat32: (n, shape) => get(n).readFloat32(n, shape),
    readInt32: (n, shape) => get(n).readInt32(n, shape),
    readBytes: (n) => get(n).readBytes(n),
    close: async () => {
      await Promise.all(sources.map((s) => s.close()));
    },
  };
}

/**
 * Writes one safetensors file, resolving and encoding one tensor at a time, into a temporary file renamed into place
 * at the end (a crash never leaves a truncated file under the final name).
 */
export async function writeSafetensorsFile(
  path: string,
  tensors: readonly TensorToWrite[],
  metadata: Readonly<Record<string, string>> = { format: "pt" },
): Promise<void> {
  const plan = planSafetensors(tensors, metadata);
  const tmp = `${path}.tmp-${process.pid}`;
  const fh = await open(tmp, "w");
  try {
    await fh.write(plan.header, 0, plan.header.byteLength, 0);
    for (const p of plan.tensors) {
      const bytes = await encodePlannedTensor(p);
      await fh.write(bytes, 0, bytes.byteLength, p.begin);
    }
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}

/**
 * Writes tensors as HF shards (`model-0000i-of-0000n.safetensors` + `model.safetensors.index.json`), or as a single
 * `model.safetensors` when everything fits in one shard. Returns the file names written.
 */
export async function writeShardedCheckpoint(
  dir: string,
  tensors: readonly TensorToWrite[],
  options: { maxShardBytes?: number; metadata?: Readonly<Record<string, string>>; baseName?: string } = {},
): Promise<string[]> {
  const base = options.baseName ?? "model";
  const metadata = options.metadata ?? { format: "pt" };
  await mkdir(dir, { recursive: true });
  const shards = groupIntoShards(tensors, options.maxShardBytes ?? 4_000_000_000);
  if (shards.length === 1) {
    const name = `${base}.safetensors`;
    await writeSafetensorsFile(join(dir, name), shards[0], metadata);
    return [name];
  }
  const weightMap: Record<string, string> = {};
  const names: string[] = [];
  let totalSize = 0;
  for (let i = 0; i < shards.length; i++) {
    const name = shardFileName(base, i, shards.length);
    await writeSafetensorsFile(join(dir, name), shards[i], metadata);
    names.push(name);
    for (const t of shards[i]) weightMap[t.name] = name;
    const plan = planSafetensors(shards[i]);
    totalSize += plan.totalBytes - plan.header.byteLength;
  }
  const sortedMap: Record<string, string> = {};
  for (const k of Object.keys(weightMap).sort()) sortedMap[k] = weightMap[k];
  const indexName = `${base}.safetensors.index.json`;
  await writeFile(join(dir, indexName), JSON.stringify({ metadata: { total_size: totalSize }, weight_map: sortedMap }, null, 2) + "\n");
  return [...names, basename(indexName)];
}
