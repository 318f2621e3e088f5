// Dense f64 linear algebra for the MHA→MLA conversion: matrices, products, symmetric eigen-decomposition, truncated
// SVD and second-moment accumulation, over wasm SIMD kernels when built and TypeScript otherwise.
export * from "./errors.ts";
export * from "./matrix.ts";
export * from "./kernels.ts";
export { typescriptKernels } from "./kernels-ts.ts";
export { loadWasmKernels, requireWasmKernels } from "./kernels-wasm.ts";
export { defaultKernels } from "./default-kernels.ts";
export * from "./matmul.ts";
export { tridiagonalize, type Tridiagonal } from "./tridiagonalize.ts";
export { tridiagonalEigen, allocTridiagonalWorkspace, solveSecular, type TridiagonalWorkspace } from "./tridiagonal-eigen.ts";
export * from "./eigh.ts";
export * from "./svd.ts";
export * from "./second-moment.ts";
export * from "./lanczos.ts";
