// Child process of bench:convert: runs one streaming conversion and prints one JSON line with its result and the
// process's own peak RSS (getrusage maxrss and /proc/self/status VmHWM), so the figure is the converter's alone.
// Calibration samples are synthetic (random token ids, image-pad runs with random embeddings): the bench measures the
// converter, not the vision tower.
import { readFileSync } from "node:fs";
import type { CalibrationSample } from "../../convert/calibration/layer-forward.ts";
import type { ConvertOptions } from "../../convert/pipeline/convert-model.ts";
import { streamConvert } from "../../convert/pipeline/stream-convert.ts";

interface RunnerArgs {
  readonly modelDir: string;
  readonly outDir: string;
  readonly options: ConvertOptions;
  readonly calibTokens: number;
  readonly hidden: number;
  readonly imagePad: number;
}

function vmHwm(): number | null {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

function syntheticCalibration(tokens: number, hidden: number, imagePad: number): CalibrationSample[] {
  // sequences of 512 tokens: 16 text, an 8×8 image (64 pads), then text; deterministic
  let s = 12345;
  const rnd = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
  const out: CalibrationSample[] = [];
  for (let left = tokens; left > 0; ) {
    const n = Math.min(512, left);
    const img = n >= 96 ? 64 : 0;
    const ids: number[] = [];
    for (let i = 0; i < n; i++) ids.push(i >= 16 && i < 16 + img ? imagePad : Math.floor(rnd() * 150_000));
    const embeds = new Float32Array(img * hidden);
    for (let i = 0; i < embeds.length; i++) embeds[i] = (rnd() - 0.5) * 0.5;
    out.push(img > 0 ? { inputIds: ids, imageEmbeds: embeds, imageGrids: [{ rows: 8, cols: 8 }] } : { inputIds: ids });
    left -= n;
  }
  return out;
}

const args = JSON.parse(process.argv[2]) as RunnerArgs;
const calibration = args.calibTokens > 0 ? syntheticCalibration(args.calibTokens, args.hidden, args.imagePad) : null;
const lines: string[] = [];
const r = await streamConvert({
  modelDir: args.modelDir,
  outDir: args.outDir,
  options: args.options,
  calibration,
  progress: (l) => {
    lines.push(l);
    process.stderr.write(l);
  },
});
process.stdout.write(
  JSON.stringify({
    seconds: r.seconds,
    phases: r.phases,
    layerPhases: r.layerPhases,
    layerSeconds: r.layerSeconds,
    layers: r.layers,
    bytesWritten: r.bytesWritten,
    files: r.files.length,
    calibrationTokens: r.calibrationTokens,
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
    vmHwmBytes: vmHwm(),
  }) + "\n",
);
