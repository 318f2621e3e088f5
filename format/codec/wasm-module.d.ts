// `import m from "./x.wasm"` yields a compiled WebAssembly.Module in workerd (wrangler's CompiledWasm rule) and esbuild.
declare module "*.wasm" {
  const module: WebAssembly.Module;
  export default module;
}
