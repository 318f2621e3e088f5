// Browser-safe model runtime API (Node-only fixture loading is in tiny-fixture.node.ts).

export * from "./attention-backend.ts";
export * from "./create-session.ts";
export * from "./decoder-session.ts";
export * from "./gqa-attention.ts";
export * from "./ops.ts";
export * from "./rope.ts";
export * from "./rope-index.ts";
export * from "./inputs/tokenizer.ts";
export * from "./vision/toy-tower.ts";
export * from "./weights.ts";
export * from "./mla/attention.ts";
export * from "./mla/build.ts";
export * from "./mla/checkpoint.ts";
export * from "./mla/kept-pairs.ts";
export * from "./mla/weights.ts";
export * from "./mla/block-projections.ts";
export * from "./mla/kernel-attention.ts";
export * from "./mla/slot-sealing.ts";
export * from "./gpu/engine.ts";
export * from "./gpu/engine-weights.ts";
export * from "./gpu/bundle-weights.ts";
