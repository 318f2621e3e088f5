// WebGPU flag values from the spec (GPUBufferUsage, GPUMapMode), so the kernels do not need the globals installed
// (dawn.node exposes them only after `Object.assign(globalThis, globals)`).
export const BufferUsage = {
  MAP_READ: 0x0001,
  COPY_SRC: 0x0004,
  COPY_DST: 0x0008,
  UNIFORM: 0x0040,
  STORAGE: 0x0080,
} as const;

export const MapModeRead = 0x0001;
