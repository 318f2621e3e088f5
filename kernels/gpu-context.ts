// One WebGPU device for the kernels: adapter/device acquisition, feature detection, a pipeline cache keyed by
// `name[cacheHint]:f16`, device-loss and uncaptured-error reporting as typed errors, and readback helpers.
import { DeviceLostError, GpuValidationError, PipelineError, WebGpuUnavailableError } from "./errors.ts";
import type { KernelProgram, ShaderFeatures } from "./program.ts";
import { BufferUsage, MapModeRead } from "./gpu-flags.ts";

export interface GpuContextOptions {
  /** `navigator.gpu` by default; Node passes the `webgpu` package's GPU. */
  readonly gpu?: GPU;
  /** Use an existing device (e.g. shared with onnxruntime-web); features are read from it. */
  readonly device?: GPUDevice;
  /** Print generated WGSL to console.debug on each compile. */
  readonly logShaders?: boolean;
  /**
   * Request `shader-f16` when the adapter has it (default true). The f16 variant only changes how fp16 words are
   * widened; SwiftShader has no shader-f16, so only real GPUs run it: this is the switch to turn it off if a driver
   * misbehaves.
   */
  readonly shaderF16?: boolean;
  /**
   * Launch shapes of the kernels (GEMV lanes per row, GEMM blocking): "auto" picks by adapter (a CPU rasterizer gets
   * fewer, longer invocations); "gpu" / "cpu" force one (tests run both on SwiftShader).
   */
  readonly launchShapes?: "auto" | "gpu" | "cpu";
  /** Buffer limits of the device: the adapter's (default: big weights bind whole) or WebGPU's defaults. */
  readonly limits?: "adapter" | "default";
}

const CPU_ADAPTER = /swiftshader|llvmpipe|lavapipe|microsoft basic render|\bwarp\b/i;

export class GpuContext {
  readonly features: ShaderFeatures;
  /**
   * The adapter is a CPU rasterizer (SwiftShader, llvmpipe/lavapipe, WARP), or `launchShapes: "cpu"`: kernels pick
   * launch shapes for it (fewer, longer invocations), since each invocation and barrier costs far more there than a
   * memory transaction.
   */
  readonly cpuAdapter: boolean;
  readonly #pipelines = new Map<string, Promise<GPUComputePipeline>>();
  #failure: Error | null = null;
  readonly #logShaders: boolean;

  private constructor(
    readonly device: GPUDevice,
    logShaders: boolean,
    launchShapes: "auto" | "gpu" | "cpu" = "auto",
  ) {
    this.features = { f16: device.features.has("shader-f16") };
    const info = (device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo;
    this.cpuAdapter = launchShapes === "auto" ? info !== undefined && CPU_ADAPTER.test(`${info.vendor} ${info.architecture} ${info.description}`) : launchShapes === "cpu";
    this.#logShaders = logShaders;
    void device.lost.then((info) => {
      if (info.reason !== "destroyed") {
        this.#failure = new DeviceLostError(
          `WebGPU device lost (${info.reason}): ${info.message}. Likely out of GPU memory; create a new context with a smaller cache.`,
        );
      }
    });
    device.addEventListener("uncapturederror", (ev) => {
      const e = (ev as GPUUncapturedErrorEvent).error;
      this.#failure ??= new GpuValidationError(`uncaptured WebGPU error: ${e.message}`);
    });
  }

  /** Requests an adapter and a device with `shader-f16` when the adapter has it and the adapter's buffer limits. */
  static async create(options: GpuContextOptions = {}): Promise<GpuContext> {
    if (options.device) return new GpuContext(options.device, options.logShaders ?? false, options.launchShapes);
    const gpu = options.gpu ?? (typeof navigator !== "undefined" ? navigator.gpu : undefined);
    if (!gpu) throw new WebGpuUnavailableError("navigator.gpu is absent: this runtime has no WebGPU; use the CPU backend");
    const adapter = await gpu.requestAdapter();
    if (!adapter) throw new WebGpuUnavailableError("requestAdapter() returned null: no usable GPU adapter; use the CPU backend");
    const requiredFeatures: GPUFeatureName[] = options.shaderF16 !== false && adapter.features.has("shader-f16") ? ["shader-f16"] : [];
    // The adapter's own buffer limits, not WebGPU's defaults (128 MiB per binding, 256 MiB per buffer): a 3B model's
    // int4 embedding / tied LM head alone is 148 MiB, bound whole from a bundle (as web-llm requests them too).
    const requiredLimits =
      options.limits === "default"
        ? {}
        : { maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize, maxBufferSize: adapter.limits.maxBufferSize };
    const device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
    return new GpuContext(device, options.logShaders ?? false, options.launchShapes);
  }

  /** Throws the first device loss or uncaptured error seen so far. */
  throwIfFailed(): void {
    if (this.#failure) throw this.#failure;
  }

  /** Compiles once per key; concurrent callers share the promise. */
  pipeline(program: KernelProgram): Promise<GPUComputePipeline> {
    const key = `${program.name}[${program.cacheHint}]:${this.features.f16 ? "f16" : "f32"}`;
    let p = this.#pipelines.get(key);
    if (!p) {
      p = this.#compile(program, key);
      this.#pipelines.set(key, p);
      p.catch(() => this.#pipelines.delete(key));
    }
    return p;
  }

  get pipelineCount(): number {
    return this.#pipelines.size;
  }

  async #compile(program: KernelProgram, key: string): Promise<GPUComputePipeline> {
    const code = program.getShaderSource(this.features);
    if (this.#logShaders) console.debug(`[kernels] ${key}\n${code}`);
    const module = this.device.createShaderModule({ label: program.name, code });
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === "error");
    if (errors.length > 0) {
      const text = errors.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join("\n");
      throw new PipelineError(`WGSL of ${key} does not compile:\n${text}`);
    }
    try {
      return await this.device.createComputePipelineAsync({
        label: program.name,
        layout: "auto",
        compute: { module, entryPoint: "main" },
      });
    } catch (e) {
      throw new PipelineError(`pipeline ${key} failed: ${(e as Error).message}`);
    }
  }

  /** Storage buffer of at least `bytes` (rounded to 16), optionally filled. */
  storageBuffer(label: string, bytes: number, extraUsage = 0): GPUBuffer {
    return this.device.createBuffer({
      label,
      size: Math.max(16, Math.ceil(bytes / 16) * 16),
      usage: BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC | extraUsage,
    });
  }

  /** Copies `bytes` from `src` at `offset` into a new Float32Array; the staging buffer is destroyed in `finally`. */
  async readFloat32(src: GPUBuffer, offset: number, count: number): Promise<Float32Array> {
    const bytes = count * 4;
    const staging = this.device.createBuffer({
      label: "readback",
      size: Math.max(16, Math.ceil(bytes / 16) * 16),
      usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST,
    });
    try {
      const enc = this.device.createCommandEncoder({ label: "readback" });
      enc.copyBufferToBuffer(src, offset, staging, 0, Math.ceil(bytes / 4) * 4);
      this.device.queue.submit([enc.finish()]);
      await staging.mapAsync(MapModeRead);
      this.throwIfFailed();
      return new Float32Array(staging.getMappedRange(0, bytes).slice(0));
    } finally {
      staging.destroy();
    }
  }

  /** Fills a buffer with NaN bit patterns — used by tests to prove every output element is written. */
  poison(buffer: GPUBuffer): void {
    const words = new Uint32Array(buffer.size / 4).fill(0x7fc00000);
    this.device.queue.writeBuffer(buffer, 0, words);
  }
}
