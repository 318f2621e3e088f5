// Environment for a child process that runs dawn.node on Chromium's SwiftShader Vulkan driver. dawn.node reads the
// driver choice and loads libvulkan when the process starts, so tests and benchmarks spawn a child with this set.
import { hasSystemTool, SYSTEM_TOOLS } from "./system-tools.ts";

/** Debian's `chromium` package installs SwiftShader's Vulkan ICD here (CI installs it through `.ci/run`). */
export const SWIFTSHADER_ICD = SYSTEM_TOOLS.swiftshader.path;

/** For benchmarks; tests use skipWithout(…, "swiftshader") from ./system-tools.ts. */
export function swiftShaderAvailable(): boolean {
  return hasSystemTool("swiftshader");
}

/** `base` with VK_ICD_FILENAMES pointing at SwiftShader and Chromium's own libvulkan.so.1 first on LD_LIBRARY_PATH
 * (Debian's libvulkan1 is not always installed). */
export function swiftShaderEnv(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return {
    ...base,
    VK_ICD_FILENAMES: SWIFTSHADER_ICD,
    LD_LIBRARY_PATH: ["/usr/lib/chromium", base.LD_LIBRARY_PATH].filter(Boolean).join(":"),
  };
}
