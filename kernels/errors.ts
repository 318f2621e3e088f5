// Typed failures of the kernels package: every error has a stable `code` and a `name` equal to its class name.

import { MlaError } from "../format/errors.ts";
export type KernelErrorCode =
  | "invalid_geometry"
  | "invalid_input"
  | "unsupported_layout"
  | "capacity_exceeded"
  | "webgpu_unavailable"
  | "device_lost"
  | "gpu_validation"
  | "pipeline_failed";

/** Base class: callers switch on `code`. */
export class KernelError extends MlaError<KernelErrorCode> {
  override readonly name: string = "KernelError";
  constructor(code: KernelErrorCode, message: string) {
    super(code, message);
  }
}

/** A geometry or encoding the kernels cannot run (wrong divisibility, bits, group). */
export class GeometryError extends KernelError {
  override readonly name = "GeometryError";
  constructor(message: string) {
    super("invalid_geometry", message);
  }
}

/** Inputs whose sizes or values do not match the geometry or the cache state. */
export class KernelInputError extends KernelError {
  override readonly name = "KernelInputError";
  constructor(message: string) {
    super("invalid_input", message);
  }
}

/** Growing the cache would pass a device limit (maxStorageBufferBindingSize / maxBufferSize). */
export class CacheCapacityError extends KernelError {
  override readonly name = "CacheCapacityError";
  constructor(message: string) {
    super("capacity_exceeded", message);
  }
}

/** No WebGPU adapter or device: use the CPU fallback (`createMlaBackend` does it for you). */
export class WebGpuUnavailableError extends KernelError {
  override readonly name = "WebGpuUnavailableError";
  constructor(message: string) {
    super("webgpu_unavailable", message);
  }
}

/** The device was lost (driver reset, out of memory); a new context must be created. */
export class DeviceLostError extends KernelError {
  override readonly name = "DeviceLostError";
  constructor(message: string) {
    super("device_lost", message);
  }
}

/** A WebGPU validation or out-of-memory error surfaced through an error scope or `uncapturederror`. */
export class GpuValidationError extends KernelError {
  override readonly name = "GpuValidationError";
  constructor(message: string) {
    super("gpu_validation", message);
  }
}

/** WGSL compilation or pipeline creation failed; the message carries the compiler's diagnostics. */
export class PipelineError extends KernelError {
  override readonly name = "PipelineError";
  constructor(message: string) {
    super("pipeline_failed", message);
  }
}
