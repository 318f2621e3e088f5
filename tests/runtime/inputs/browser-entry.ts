// Browser side of the image-decode test: Blob → createImageBitmap → OffscreenCanvas (runtime/inputs/image-decode.ts),
// then the same QwenImageProcessor as Node; returns hashes of the resized bytes and of the pixel values.
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import { decodeBrowserImage } from "../../../runtime/inputs/image-decode.ts";
import { QwenImageProcessor } from "../../../runtime/inputs/image-processor.ts";

async function processImages(preprocessorConfig: unknown, files: { name: string; bytes: number[] }[]) {
  const p = QwenImageProcessor.fromJson(preprocessorConfig);
  const out = [];
  for (const f of files) {
    const image = await decodeBrowserImage(new Blob([new Uint8Array(f.bytes)], { type: "image/png" }));
    const r = p.process(image);
    out.push({
      name: f.name,
      decodedSha: bytesToHex(sha256(image.data as Uint8Array)),
      resizedSha: bytesToHex(sha256(r.resized.data as Uint8Array)),
      pixelSha: bytesToHex(sha256(new Uint8Array(r.pixelValues.buffer))),
    });
  }
  return out;
}

(globalThis as unknown as { processImages: typeof processImages }).processImages = processImages;
