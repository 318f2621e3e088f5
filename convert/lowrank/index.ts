// Low-rank factorisations of one layer's KV projection for the MHA→MLA conversion: SVD_joint, SVD_split and the
// modality-decoupled activation-aware MD-SVD, with damping and the activation-weighted reconstruction error.
export * from "./errors.ts";
export * from "./types.ts";
export * from "./svd-joint.ts";
export * from "./svd-split.ts";
export * from "./damping.ts";
export * from "./md-svd.ts";
export * from "./reconstruction-error.ts";
export * from "./modality-moments.ts";
