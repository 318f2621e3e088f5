// Child process for tests/kernels/shader-f16.test.ts: compiles every kernel variant the cases use on dawn.node's null
// backend, the one adapter here that offers `shader-f16` (SwiftShader does not). The null backend runs nothing, but
// Tint parses, resolves and validates each module and the pipeline's layout, so the f16 WGSL is checked before a real
// GPU ever sees it. Prints one JSON line.
import { create, globals } from "webgpu";
import { GpuContext } from "../../kernels/gpu-context.ts";
import type { KernelProgram } from "../../kernels/program.ts";
import { caseLayouts, layoutPrograms } from "./case-programs.ts";
import { modelPrograms } from "./model-programs.ts";

export interface CompileOutcome {
  readonly key: string;
  readonly f16: boolean;
  readonly error?: string;
}

export interface NullBackendReport {
  readonly adapterFeatures: string[];
  readonly outcomes: CompileOutcome[];
  /** Programs that must not compile: proves the null backend validates WGSL at all. */
  readonly controls: CompileOutcome[];
}

Object.assign(globalThis, globals);
const gpu = create(["backend=null"]) as unknown as GPU;

async function compile(ctx: GpuContext, program: KernelProgram): Promise<CompileOutcome> {
  const key = `${program.name}[${program.cacheHint}]`;
  try {
    await ctx.pipeline(program);
    return { key, f16: ctx.features.f16 };
  } catch (e) {
    return { key, f16: ctx.features.f16, error: `${(e as Error).name}: ${(e as Error).message}` };
  }
}

const control = (name: string, code: string): KernelProgram => ({
  name,
  cacheHint: "control",
  workgroupSize: 1,
  getShaderSource: () => code,
});
const f16Body = "fn widen(w: u32) -> vec2<f32> { return vec2<f32>(bitcast<vec2<f16>>(w)); }\n" +
  "@group(0) @binding(0) var<storage, read_write> o: array<vec2<f32>>;\n" +
  "@compute @workgroup_size(1) fn main() { o[0] = widen(o[0].x); }\n";

let code = 0;
try {
  const adapter = await gpu.requestAdapter();
  const withF16 = await GpuContext.create({ gpu });
  const withoutF16 = await GpuContext.create({ gpu, shaderF16: false });
  const outcomes: CompileOutcome[] = [];
  // `model` as the first argument: the model-kernel programs (model-programs.ts) instead of the MLA attention layouts.
  const programSets = process.argv[2] === "model" ? [modelPrograms()] : caseLayouts().map((layout) => layoutPrograms(layout));
  for (const programs of programSets) {
    for (const ctx of [withF16, withoutF16]) {
      for (const p of programs) outcomes.push(await compile(ctx, p));
    }
  }
  const controls = [
    // f16 used without `enable f16;`
    await compile(withF16, control("control-no-enable", f16Body)),
    // `enable f16;` on a device created without the feature
    await compile(withoutF16, control("control-no-feature", `enable f16;\n${f16Body}`)),
    // a type error: bitcast of a u32 to f32 pair is fine, to vec3<f16> is not
    await compile(withF16, control("control-bad-bitcast", `enable f16;\n${f16Body.replace("vec2<f16>", "vec3<f16>")}`)),
  ];
  const report: NullBackendReport = { adapterFeatures: adapter ? [...adapter.features] : [], outcomes, controls };
  console.log(JSON.stringify(report));
} catch (e) {
  console.log(JSON.stringify({ fatal: `${(e as Error).name}: ${(e as Error).message}` }));
  code = 1;
}
// dawn.node keeps the process alive otherwise (platform.md §9.2).
process.exit(code);
