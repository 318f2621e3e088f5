import { describe, expect, it } from "vitest";
import { FORMAT_VERSION } from "../format/chunk/constants.ts";
describe("smoke", () => { it("has a version", () => { expect(FORMAT_VERSION).toBe(1); }); });
