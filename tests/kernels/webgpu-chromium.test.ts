// MLA kernels in a real browser: Debian Chromium + playwright-core, WebGPU on SwiftShader (platform.md §9.1).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolve } from "node:path";
import { KERNEL_CASES } from "./cases.ts";
import { openInChromium, type BrowserSession } from "./chromium.ts";
import { skipWithout } from "../helpers/system-tools.ts";
import { expectCaseResult, expectConcurrentResult, expectSessionResult } from "./expected.ts";
import type { CaseResult, ConcurrentResult, SessionResult } from "./harness.ts";

// Skipped (and listed in the run's summary) only when /usr/bin/chromium is missing; CI requires it.
describe.skipIf(skipWithout(import.meta.url, "chromium"))("MLA kernels in Chromium (WebGPU on SwiftShader)", () => {
  let session: BrowserSession;
  let out: { adapter: string; results: Array<CaseResult | { name: string; error: string }>; session: SessionResult; concurrent: ConcurrentResult };

  beforeAll(async () => {
    session = await openInChromium(resolve(import.meta.dirname, "browser-entry.ts"));
    await session.page.waitForFunction(() => "runKernelCases" in globalThis);
    out = (await session.page.evaluate(() =>
      (globalThis as unknown as { runKernelCases(): Promise<unknown> }).runKernelCases(),
    )) as typeof out;
  }, 110_000);

  afterAll(async () => {
    await session?.close();
  });

  it("should run on the SwiftShader WebGPU adapter", () => {
    expect(out.adapter).toMatch(/swiftshader/i);
  });

  it("should follow a session: decode steps across a chunk seal, then an appended turn", () => {
    expectSessionResult(out.session);
  });

  it("should give each of four concurrent steps of two sessions its own result", () => {
    expectConcurrentResult(out.concurrent);
  });

  for (const [i, c] of KERNEL_CASES.entries()) {
    it(`should match the f64 reference: ${c.name}`, () => {
      expectCaseResult(c, out.results[i]);
    });
  }
});
