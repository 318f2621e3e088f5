// The system-tool helper and its summary: hiding a tool by env, when a skip must fail (CI), and the summary's text.
import { describe, expect, it } from "vitest";
import { hasSystemTool, INSTALL_COMMAND, missingSystemTools, systemToolsRequired, type SystemTool } from "./system-tools.ts";
import { skipSummary } from "./system-tools-reporter.ts";

describe("system tools", () => {
  it("should install every tool with one apt command", () => {
    expect(INSTALL_COMMAND).toBe("apt-get install -y chromium prometheus");
  });

  it("should treat a hidden tool as missing, and chromium's SwiftShader ICD with it", () => {
    expect(missingSystemTools(["chromium", "swiftshader", "promtool"], { MLA_EDGE_HIDE_SYSTEM_TOOLS: "all" })).toEqual(["chromium", "swiftshader", "promtool"]);
    expect(missingSystemTools(["chromium", "swiftshader"], { MLA_EDGE_HIDE_SYSTEM_TOOLS: " Chromium " })).toEqual(["chromium", "swiftshader"]);
    expect(hasSystemTool("chromium", { MLA_EDGE_HIDE_SYSTEM_TOOLS: "promtool" })).toBe(hasSystemTool("chromium", {}));
    expect(hasSystemTool("promtool", { MLA_EDGE_HIDE_SYSTEM_TOOLS: "promtool" })).toBe(false);
  });

  it("should require the tools under MLA_EDGE_REQUIRE_SYSTEM_TOOLS=1 or CI=true, and let =0 override CI", () => {
    expect(systemToolsRequired({})).toBe(false);
    expect(systemToolsRequired({ MLA_EDGE_REQUIRE_SYSTEM_TOOLS: "1" })).toBe(true);
    expect(systemToolsRequired({ CI: "true" })).toBe(true);
    expect(systemToolsRequired({ CI: "true", MLA_EDGE_REQUIRE_SYSTEM_TOOLS: "0" })).toBe(false);
    expect(systemToolsRequired({ CI: "false" })).toBe(false);
  });

  it("should summarise the skips once, per file, with the install command, and say nothing when none", () => {
    expect(skipSummary(new Map(), new Map())).toEqual([]);
    const lines = skipSummary(
      new Map<string, Set<SystemTool>>([
        ["tests/telemetry/exposition.test.ts", new Set(["promtool"])],
        ["tests/kernels/webgpu-chromium.test.ts", new Set(["chromium"])],
      ]),
      new Map([
        ["tests/telemetry/exposition.test.ts", 5],
        ["tests/kernels/webgpu-chromium.test.ts", 19],
      ]),
    );
    expect(lines.filter((l) => l !== "")).toEqual([
      " Skipped for a missing system tool: 24 tests in 2 files (missing: chromium /usr/bin/chromium, promtool /usr/bin/promtool)",
      "   tests/kernels/webgpu-chromium.test.ts: 19 skipped, needs chromium",
      "   tests/telemetry/exposition.test.ts: 5 skipped, needs promtool",
      " Install what they need: apt-get install -y chromium prometheus",
    ]);
  });
});
