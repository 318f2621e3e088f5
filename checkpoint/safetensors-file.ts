// One safetensors file read lazily through a ByteSource: the header is parsed once, tensor bytes are read on demand.

import type { ByteSource } from "./byte-source.ts";
import { decodeFloat32, decodeInt32 } from "./dtype.ts";
import { CheckpointError } from "./errors.ts";
import { elementCount, headerLength, parseSafetensorsHeader, type SafetensorsHeader, type TensorInfo } from "./safetensors-header.ts";
import type { TensorSource } from "./tensor-source.ts";

export function checkShape(name: string, actual: readonly number[], expected: readonly number[] | undefined, label: string): void {
  if (expected === undefined) return;
  if (actual.length !== expected.length || actual.some((d, i) => d !== expected[i])) {
    throw new CheckpointError(
      "shape_mismatch",
      `${label}: tensor ${name} has shape [${actual.join(", ")}], expected [${expected.join(", ")}]`,
    );
  }
}

export class SafetensorsFile implements TensorSource {
  private constructor(
    private readonly source: ByteSource,
    readonly header: SafetensorsHeader,
  ) {}

  /** Reads and validates the header; tensor data stays on the source until read. */
  static async open(source: ByteSource): Promise<SafetensorsFile> {
    const n = headerLength(await source.read(0, Math.min(8, source.size)), source.label);
    if (8 + n > source.size) {
      throw new CheckpointError("bad_header", `${source.label}: header length ${n} runs past the ${source.size}-byte file`);
    }
    const json = await source.read(8, n);
    return new SafetensorsFile(source, parseSafetensorsHeader(json, source.label, source.size));
  }

  get label(): string {
    return this.source.label;
  }

  get metadata(): Readonly<Record<string, string>> {
    return this.header.metadata;
  }

  names(): string[] {
    return [...this.header.tensors.keys()];
  }

  has(name: string): boolean {
    return this.header.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.header.tensors.get(name);
    if (t === undefined) throw new CheckpointError("missing_tensor", `${this.source.label}: no tensor named ${name}`);
    return t;
  }

  /** The tensor's raw little-endian bytes. */
  readBytes(name: string): Promise<Uint8Array> {
    const t = this.info(name);
    return this.source.read(t.begin, t.end - t.begin);
  }

  async readFloat32(name: string, expectShape?: readonly number[]): Promise<Float32Array> {
    const t = this.info(name);
    checkShape(name, t.shape, expectShape, this.source.label);
    return decodeFloat32(await this.readBytes(name), t.dtype, elementCount(t.shape), `${this.source.label}: ${name}`);
  }

  async readInt32(name: string, expectShape?: readonly number[]): Promise<Int32Array> {
    const t = this.info(name);
    checkShape(name, t.shape, expectShape, this.source.label);
    return decodeInt32(await this.readBytes(name), t.dtype, elementCount(t.shape), `${this.source.label}: ${name}`);
  }

  close(): Promise<void> {
    return this.source.close();
  }
}
