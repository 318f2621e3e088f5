// Model kernels in a real browser: Debian Chromium + playwright-core, WebGPU on SwiftShader (platform.md §9.1).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolve } from "node:path";
import { chromiumAvailable, openInChromium, type BrowserSession } from "./chromium.ts";
import { MODEL_CASES } from "./model-cases.ts";
import { expectModelCase, type ModelOutcome } from "./model-expected.ts";

// Skipped only when /usr/bin/chromium is missing; CI installs it.
describe.skipIf(!chromiumAvailable())("model kernels in Chromium (WebGPU on SwiftShader)", () => {
  let session: BrowserSession;
  let out: { adapter: string; results: ModelOutcome[] };

  beforeAll(async () => {
    session = await openInChromium(resolve(import.meta.dirname, "model-browser-entry.ts"));
    await session.page.waitForFunction(() => "runModelKernelCases" in globalThis);
    out = (await session.page.evaluate(() =>
      (globalThis as unknown as { runModelKernelCases(): Promise<unknown> }).runModelKernelCases(),
    )) as typeof out;
  }, 240_000);

  afterAll(async () => {
    await session?.close();
  });

  it("should run on the SwiftShader WebGPU adapter", () => {
    expect(out.adapter).toMatch(/swiftshader/i);
  });

  for (const [i, c] of MODEL_CASES.entries()) {
    it(`should match the CPU reference: ${c.name}`, () => {
      expectModelCase(c, out.results[i]);
    });
  }
});
