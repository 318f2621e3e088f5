// Types of scripts/build-wasm.mjs for TypeScript callers (the codec tests build the modules on demand).
export declare const WASM_TARGETS: ReadonlyArray<{ readonly entry: string; readonly target: string; readonly outFile: string }>;
export declare function isUpToDate(): Promise<boolean>;
export declare function buildWasm(options?: { force?: boolean; debug?: boolean }): Promise<boolean>;
