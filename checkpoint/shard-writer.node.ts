// Streaming HF-style sharded writer (Node): the layout of every shard is planned up front from tensor shapes alone, so
// tensors can then be written in any order (a converter produces them layer by layer, not name-sorted) straight to
// their offsets, one at a time — the writer never holds more than the tensor it is given. Output goes to a folder the
// caller names (a temporary one next to the final folder, renamed at the end by the caller).

import { open } from "node:fs/promises";
import { join } from "node:path";
import { DTYPE_BYTES, encodeTensor, type WritableDtype } from "./dtype.ts";
import { CheckpointError } from "./errors.ts";
import { elementCount } from "./safetensors-header.ts";
import { planSafetensors, shardFileName, type TensorData } from "./safetensors-writer.ts";

/** A tensor's name, dtype and shape (its data comes later). */
export interface TensorSpec {
  readonly name: string;
  readonly dtype: WritableDtype;
  readonly shape: readonly number[];
}

export interface ShardPlan {
  readonly file: string;
  readonly header: Uint8Array;
  /** name → [begin, end) absolute offsets in the file. */
  readonly spans: ReadonlyMap<string, readonly [number, number]>;
  readonly totalBytes: number;
}

export interface ShardedLayout {
  readonly shards: readonly ShardPlan[];
  /** The tensor → file map of `model.safetensors.index.json`; null when everything is one `model.safetensors`. */
  readonly weightMap: ReadonlyMap<string, string> | null;
  /** Tensor bytes (headers excluded), the index's `metadata.total_size`. */
  readonly tensorBytes: number;
  /** Bytes of every file written (headers included, the index json excluded). */
  readonly fileBytes: number;
}

export function specBytes(t: TensorSpec): number {
  return elementCount(t.shape) * DTYPE_BYTES[t.dtype];
}

/**
 * Packs tensors, in the given order (a converter's production order), into shards of at most `maxShardBytes` of data
 * (a larger tensor gets a shard of its own) and lays each shard out as safetensors does (name-sorted inside the file).
 */
export function planShardedLayout(
  tensors: readonly TensorSpec[],
  options: { maxShardBytes?: number; baseName?: string; metadata?: Readonly<Record<string, string>> } = {},
): ShardedLayout {
  const max = options.maxShardBytes ?? 4_000_000_000;
  const base = options.baseName ?? "model";
  const metadata = options.metadata ?? { format: "pt" };
  const groups: TensorSpec[][] = [];
  let current: TensorSpec[] = [];
  let bytes = 0;
  const seen = new Set<string>();
  for (const t of tensors) {
    if (seen.has(t.name)) throw new CheckpointError("duplicate_tensor", `tensor ${t.name} planned twice`);
    seen.add(t.name);
    const size = specBytes(t);
    if (current.length > 0 && bytes + size > max) {
      groups.push(current);
      current = [];
      bytes = 0;
    }
    current.push(t);
    bytes += size;
  }
  if (current.length > 0 || groups.length === 0) groups.push(current);
  const shards: ShardPlan[] = [];
  const weightMap = new Map<string, string>();
  let tensorBytes = 0;
  let fileBytes = 0;
  groups.forEach((g, i) => {
    const file = groups.length === 1 ? `${base}.safetensors` : shardFileName(base, i, groups.length);
    const plan = planSafetensors(
      g.map((t) => ({ ...t, data: new Uint8Array(0) })),
      metadata,
    );
    const spans = new Map<string, readonly [number, number]>();
    for (const p of plan.tensors) {
      spans.set(p.tensor.name, [p.begin, p.end]);
      weightMap.set(p.tensor.name, file);
    }
    tensorBytes += plan.totalBytes - plan.header.byteLength;
    fileBytes += plan.totalBytes;
    shards.push({ file, header: plan.header, spans, totalBytes: plan.totalBytes });
  });
  return { shards, weightMap: groups.length === 1 ? null : weightMap, tensorBytes, fileBytes };
}

/** Where bytes go: a positional writer per file. Tests inject one that fails (disk full). */
export interface FileSink {
  write(bytes: Uint8Array, position: number): Promise<void>;
  close(): Promise<void>;
}
export type OpenFileSink = (path: string) => Promise<FileSink>;

export const nodeFileSink: OpenFileSink = async (path) => {
  const fh = await open(path, "w");
  return {
    async write(bytes, position) {
      let done = 0;
      while (done < bytes.byteLength) {
        const { bytesWritten } = await fh.write(bytes, done, bytes.byteLength - done, position + done);
        done += bytesWritten;
      }
    },
    close: () => fh.close(),
  };
};

/** Encodes `data` to `spec`'s dtype (a Uint8Array is taken as already-encoded bytes) and checks its size. */
export function encodeForSpec(spec: TensorSpec, data: TensorData): Uint8Array {
  const need = specBytes(spec);
  if (data instanceof Uint8Array) {
    if (data.byteLength !== need) {
      throw new CheckpointError("shape_mismatch", `tensor ${spec.name}: ${spec.dtype}[${spec.shape.join(", ")}] needs ${need} bytes, got ${data.byteLength}`);
    }
    return data;
  }
  const n = elementCount(spec.shape);
  if (data.length !== n) throw new CheckpointError("shape_mismatch", `tensor ${spec.name}: shape [${spec.shape.join(", ")}] needs ${n} values, got ${data.length}`);
  return encodeTensor(data, spec.dtype, spec.name);
}

/** Writes a planned sharded checkpoint into `dir`, tensor by tensor in any order. */
export class ShardedCheckpointWriter {
  private readonly sinks = new Map<string, FileSink>();
  private readonly fileOf = new Map<string, ShardPlan>();
  private readonly specs = new Map<string, TensorSpec>();
  private readonly left = new Map<string, number>();
  private readonly written = new Set<string>();
  private bytes = 0;

  constructor(
    readonly dir: string,
    readonly layout: ShardedLayout,
    specs: readonly TensorSpec[],
    private readonly openSink: OpenFileSink = nodeFileSink,
  ) {
    for (const s of specs) this.specs.set(s.name, s);
    for (const sh of layout.shards) {
      this.left.set(sh.file, sh.spans.size);
      for (const n of sh.spans.keys()) {
        if (!this.specs.has(n)) throw new CheckpointError("bad_header", `planned tensor ${n} has no spec`);
        this.fileOf.set(n, sh);
      }
    }
  }

  /** Bytes written so far (headers included). */
  get bytesWritten(): number {
    return this.bytes;
  }

  private async sink(sh: ShardPlan): Promise<FileSink> {
    let s = this.sinks.get(sh.file);
    if (s === undefined) {
      const path = join(this.dir, sh.file);
      try {
        s = await this.openSink(path);
        this.sinks.set(sh.file, s);
        await s.write(sh.header, 0);
      } catch (e) {
        throw new CheckpointError("io", `cannot write ${path}: ${(e as Error).message}`, { cause: e });
      }
      this.bytes += sh.header.byteLength;
    }
    return s;
  }

  async write(name: string, data: TensorData): Promise<void> {
    const sh = this.fileOf.get(name);
    const spec = this.specs.get(name);
    if (sh === undefined || spec === undefined) throw new CheckpointError("bad_header", `tensor ${name} is not in the planned layout`);
    if (this.written.has(name)) throw new CheckpointError("duplicate_tensor", `tensor ${name} written twice`);
    const bytes = encodeForSpec(spec, data);
    const sink = await this.sink(sh);
    const [begin] = sh.spans.get(name)!;
    try {
      await sink.write(bytes, begin);
    } catch (e) {
      throw new CheckpointError("io", `writing tensor ${name} to ${join(this.dir, sh.file)} failed: ${(e as Error).message}`, { cause: e });
    }
    this.bytes += bytes.byteLength;
    this.written.add(name);
    const left = this.left.get(sh.file)! - 1;
    this.left.set(sh.file, left);
    if (left === 0) {
      this.sinks.delete(sh.file);
      await sink.close();
    }
  }

  /** Checks every planned tensor was written, closes the files and writes the index. Returns the file names. */
  async finish(): Promise<string[]> {
    const missing = [...this.specs.keys()].filter((n) => !this.written.has(n));
    if (missing.length > 0) throw new CheckpointError("missing_tensor", `output is missing ${missing.length} tensor(s), first ${missing[0]}`);
    for (const s of this.sinks.values()) await s.close();
    this.sinks.clear();
    const files = this.layout.shards.map((s) => s.file);
    if (this.layout.weightMap !== null) {
      const map: Record<string, string> = {};
      for (const k of [...this.layout.weightMap.keys()].sort()) map[k] = this.layout.weightMap.get(k)!;
      const text = JSON.stringify({ metadata: { total_size: this.layout.tensorBytes }, weight_map: map }, null, 2) + "\n";
      const sink = await this.openSink(join(this.dir, "model.safetensors.index.json"));
      try {
        await sink.write(new TextEncoder().encode(text), 0);
      } catch (e) {
        throw new CheckpointError("io", `writing model.safetensors.index.json failed: ${(e as Error).message}`, { cause: e });
      } finally {
        await sink.close();
      }
      files.push("model.safetensors.index.json");
    }
    return files;
  }

  /** Closes whatever is open (after a failure; the caller removes the folder). */
  async abort(): Promise<void> {
    for (const s of this.sinks.values()) await s.close().catch(() => undefined);
    this.sinks.clear();
  }
}
