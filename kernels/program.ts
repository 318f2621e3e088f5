// Kernel programs as plain objects (onnxruntime-web JSEP style): compile-time facts go in `cacheHint`, runtime sizes in
// uniforms, so one pipeline serves every sequence length. `uniformLayout` emits the WGSL struct and packs its values.

/** Facts of the device that change the generated WGSL. */
export interface ShaderFeatures {
  /** `shader-f16` is enabled on the device: fp16 words are widened with native f16 instead of unpack2x16float. */
  readonly f16: boolean;
}

/** One compute kernel. `getShaderSource` runs only on a pipeline-cache miss. */
export interface KernelProgram {
  /** Labels the shader module and pipeline, and prefixes the cache key. */
  readonly name: string;
  /** Compile-time facts only (dims, bits, group, workgroup size) — never sequence lengths. */
  readonly cacheHint: string;
  readonly workgroupSize: number;
  getShaderSource(features: ShaderFeatures): string;
}

export type UniformType = "u32" | "f32";

/** A uniform struct: field order is binding order; padded to 16 bytes. */
export interface UniformLayout<K extends string> {
  readonly wgsl: string;
  readonly byteLength: number;
  pack(values: Record<K, number>): ArrayBuffer;
}

/** Declares `struct Params` and `@group(0) @binding(0) var<uniform> P: Params`. */
export function uniformLayout<K extends string>(fields: ReadonlyArray<readonly [K, UniformType]>): UniformLayout<K> {
  const padded = Math.ceil(fields.length / 4) * 4;
  const lines = fields.map(([n, t]) => `  ${n}: ${t},`);
  for (let i = fields.length; i < padded; i++) lines.push(`  _pad${i}: u32,`);
  const wgsl = `struct Params {\n${lines.join("\n")}\n};\n@group(0) @binding(0) var<uniform> P: Params;\n`;
  const byteLength = padded * 4;
  return {
    wgsl,
    byteLength,
    pack(values) {
      const buf = new ArrayBuffer(byteLength);
      const u = new Uint32Array(buf);
      const f = new Float32Array(buf);
      fields.forEach(([n, t], i) => {
        const v = values[n];
        if (t === "f32") f[i] = v;
        else u[i] = v >>> 0;
      });
      return buf;
    },
  };
}

/** WGSL that widens a u32 holding two fp16 values (low half first) to vec2<f32>. */
export function fp16PairWgsl(features: ShaderFeatures): string {
  return features.f16
    ? "fn fp16Pair(w: u32) -> vec2<f32> { return vec2<f32>(bitcast<vec2<f16>>(w)); }\n"
    : "fn fp16Pair(w: u32) -> vec2<f32> { return unpack2x16float(w); }\n";
}

/** Prefix for the module: `enable f16;` must come first. */
export function shaderPreamble(features: ShaderFeatures): string {
  return features.f16 ? "enable f16;\n" : "";
}

/** Splits a 1-D workgroup count over x/y under the per-dimension limit; shaders rebuild the index from both. */
export function normalizeDispatch(groups: number, maxPerDim: number): [number, number] {
  if (groups <= maxPerDim) return [Math.max(1, groups), 1];
  const y = Math.ceil(groups / maxPerDim);
  return [Math.ceil(groups / y), y];
}
