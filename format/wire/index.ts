// Public API of the edge-store wire format (docs/api.md): binary frames, proxy latents, JSON messages.
export * from "./frames.ts";
export * from "./latents.ts";
export * from "./messages.ts";
export * from "./chunk-run.ts";
export * from "./restore-check.ts";
export * from "./control-msgpack.ts";
export * from "./limits.ts";
