// Pure (browser-safe) checkpoint API. Node file access lives in io.node.ts.

export * from "./errors.ts";
export * from "./dtype.ts";
export * from "./safetensors-header.ts";
export * from "./byte-source.ts";
export * from "./tensor-source.ts";
export * from "./safetensors-file.ts";
export * from "./sharded-source.ts";
export * from "./safetensors-writer.ts";
export * from "./config.ts";
export * from "./families/index.ts";
export * from "./mla-config.ts";
export * from "./copy-tensors.ts";
