// WebGPU in Node through dawn.node (the `webgpu` package): a GpuContext when an adapter exists, null otherwise. The GPU
// object is kept referenced for the life of the process (dawn.node crashes when its instance is garbage-collected
// while a device is in use). dawn.node reads VK_ICD_FILENAMES when it loads: set it before the process starts to pick a
// Vulkan driver (e.g. SwiftShader in tests).

import { GpuContext } from "../../kernels/gpu-context.ts";
import { WebGpuUnavailableError } from "../../kernels/errors.ts";

let held: GPU | null = null;

export async function nodeGpuContext(): Promise<GpuContext | null> {
  try {
    if (held === null) {
      const { create, globals } = await import("webgpu");
      Object.assign(globalThis, globals);
      held = create([]) as unknown as GPU;
    }
    return await GpuContext.create({ gpu: held });
  } catch (e) {
    if (e instanceof WebGpuUnavailableError) return null;
    // No loadable dawn.node (platform without a prebuilt binary): the CPU runtime.
    if (e instanceof Error && /Cannot find|dlopen|ERR_DLOPEN|not a valid|GLIBC/i.test(e.message)) return null;
    throw e;
  }
}
