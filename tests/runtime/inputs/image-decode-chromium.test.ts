// The browser decode path in Chromium gives the same RGB bytes, resized bytes and pixel values as Node's pngjs path,
// bit for bit, on the qwen25vl-mini images (one needs a resize, one does not).
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readImageFile } from "../../../runtime/inputs/image-decode.node.ts";
import { QwenImageProcessor } from "../../../runtime/inputs/image-processor.ts";
import { chromiumAvailable, openInChromium, type BrowserSession } from "../../kernels/chromium.ts";

const DIR = "fixtures/qwen25vl-mini";
const FILES = ["images/gradient_252x56.png", "images/noisy_300x150.png", "images/resized/noisy_300x150_to_308x140.png"];
const config = JSON.parse(readFileSync(join(DIR, "preprocessor_config.json"), "utf8")) as unknown;

// Skipped only when /usr/bin/chromium is missing; CI installs it.
describe.skipIf(!chromiumAvailable())("image decode in Chromium (createImageBitmap + OffscreenCanvas)", () => {
  let session: BrowserSession;
  let browser: { name: string; decodedSha: string; resizedSha: string; pixelSha: string }[];

  beforeAll(async () => {
    session = await openInChromium(resolve(import.meta.dirname, "browser-entry.ts"));
    await session.page.waitForFunction(() => "processImages" in globalThis);
    const files = FILES.map((name) => ({ name, bytes: Array.from(readFileSync(join(DIR, name))) }));
    browser = (await session.page.evaluate(
      ([c, f]) => (globalThis as unknown as { processImages(c: unknown, f: unknown): Promise<unknown> }).processImages(c, f),
      [config, files] as const,
    )) as typeof browser;
  }, 110_000);

  afterAll(async () => {
    await session?.close();
  });

  for (const [i, name] of FILES.entries()) {
    it(`${name}: decoded, resized and pixel-value bytes equal Node's`, async () => {
      const p = QwenImageProcessor.fromJson(config);
      const image = await readImageFile(join(DIR, name));
      const r = p.process(image);
      expect(browser[i]).toEqual({
        name,
        decodedSha: bytesToHex(sha256(image.data as Uint8Array)),
        resizedSha: bytesToHex(sha256(r.resized.data as Uint8Array)),
        pixelSha: bytesToHex(sha256(new Uint8Array(r.pixelValues.buffer))),
      });
    });
  }
});
