// Vision towers behind one interface: onnxruntime-web (WebGPU EP in a browser, wasm in Node) on the model's ONNX
// graph, or the plain TypeScript tower (runtime/vision/toy-tower.ts). Every encoder counts its calls, so tests can prove that
// a restored session never re-encodes an image.

import { runVisionTower, type VisionTowerWeights } from "./toy-tower.ts";
import { RuntimeError } from "../errors.ts";

export interface VisionEncoder {
  /** "ort-webgpu", "ort-wasm" or "typescript". */
  readonly kind: string;
  /** Images encoded so far. */
  readonly calls: number;
  /** patches [images × cells × patchDim] in [0, 1] → embeddings [images × cells × hidden]. */
  encode(patches: Float32Array, images: number): Promise<Float32Array>;
  dispose(): Promise<void>;
}

export interface VisionShape {
  readonly cells: number;
  readonly patchDim: number;
  readonly hidden: number;
}

/** The TypeScript tower (f64 math): the reference, and the fallback when onnxruntime-web is not available. */
export class TypeScriptVisionEncoder implements VisionEncoder {
  readonly kind = "typescript";
  calls = 0;
  constructor(private readonly weights: VisionTowerWeights) {}

  async encode(patches: Float32Array, images: number): Promise<Float32Array> {
    this.calls += images;
    return runVisionTower(this.weights, patches, images);
  }

  async dispose(): Promise<void> {}
}

/** What this module uses of onnxruntime-web (an optional peer dependency: pass its namespace, e.g. `import * as ort`). */
export interface OrtNamespace {
  readonly InferenceSession: {
    create(model: Uint8Array, options?: { executionProviders?: string[] }): Promise<OrtSessionLike>;
  };
  readonly Tensor: new (type: "float32", data: Float32Array, dims: readonly number[]) => unknown;
}

export interface OrtSessionLike {
  run(feeds: Record<string, unknown>): Promise<Record<string, { getData(): Promise<unknown> } | undefined>>;
  release(): Promise<void>;
}

export interface OrtVisionOptions {
  /** ["webgpu", "wasm"] in a browser with WebGPU, ["wasm"] in Node. */
  readonly executionProviders: readonly ("webgpu" | "wasm")[];
  readonly inputName?: string;
  readonly outputName?: string;
}

/** The model's vision.onnx under onnxruntime-web. Input `patches` [images, cells, patchDim], output `embeds`. */
export class OrtVisionEncoder implements VisionEncoder {
  calls = 0;
  private constructor(
    private readonly ort: OrtNamespace,
    private readonly session: OrtSessionLike,
    readonly kind: string,
    private readonly shape: VisionShape,
    private readonly inputName: string,
    private readonly outputName: string,
  ) {}

  static async create(ort: OrtNamespace, model: Uint8Array, shape: VisionShape, options: OrtVisionOptions): Promise<OrtVisionEncoder> {
    let session: OrtSessionLike;
    try {
      session = await ort.InferenceSession.create(model, { executionProviders: [...options.executionProviders] });
    } catch (cause) {
      throw new RuntimeError("bad_model", `onnxruntime-web could not load the vision tower with ${options.executionProviders.join(", ")}: ${String(cause)}`, { cause });
    }
    const kind = `ort-${options.executionProviders[0]}`;
    return new OrtVisionEncoder(ort, session, kind, shape, options.inputName ?? "patches", options.outputName ?? "embeds");
  }

  async encode(patches: Float32Array, images: number): Promise<Float32Array> {
    const { cells, patchDim, hidden } = this.shape;
    if (patches.length !== images * cells * patchDim) {
      throw new RuntimeError("bad_messages", `vision tower expects ${images} × ${cells} × ${patchDim} patch values, got ${patches.length}`);
    }
    this.calls += images;
    const input = new this.ort.Tensor("float32", patches, [images, cells, patchDim]);
    const result = await this.session.run({ [this.inputName]: input });
    const out = result[this.outputName];
    if (out === undefined) throw new RuntimeError("bad_model", `vision tower has no output "${this.outputName}"`);
    const data = (await out.getData()) as Float32Array;
    if (data.length !== images * cells * hidden) {
      throw new RuntimeError("bad_model", `vision tower returned ${data.length} values, expected ${images} × ${cells} × ${hidden}`);
    }
    return data.slice();
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}
