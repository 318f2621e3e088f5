// One error base class per side (docs/architecture.md): MlaError under format/, checkpoint/, kernels/, runtime/ and
// convert/; WorkerError under worker/; MlaEdgeError under the SDK. Every error carries a stable `code`.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { CheckpointError } from "../../checkpoint/errors.ts";
import { ChunkError } from "../../format/chunk/types.ts";
import { MlaError } from "../../format/errors.ts";
import { ClientReportError } from "../../format/telemetry/client-report.ts";
import { GeometryError, KernelError } from "../../kernels/errors.ts";
import { RuntimeError } from "../../runtime/errors.ts";
import { UserError } from "../../convert/cli/errors.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const BASES = new Set(["format/errors.ts", "worker/errors.ts", "client/core/error.ts"]);

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? sources(p) : /\.(ts|mts)$/.test(name) && !name.endsWith(".d.ts") ? [p] : [];
  });
}

describe("error classes", () => {
  it("should extend Error only in the three base classes", () => {
    const offenders = ["format", "checkpoint", "kernels", "worker", "runtime", "convert", "client"]
      .flatMap((d) => sources(join(ROOT, d)))
      .filter((p) => /\bextends\s+(Error|TypeError|RangeError)\b/.test(readFileSync(p, "utf8")))
      .map((p) => relative(ROOT, p))
      .filter((p) => !BASES.has(p));
    expect(offenders).toEqual([]);
  });

  it("should give every runtime/convert-side error a code, its class name and the MlaError base", () => {
    const cause = new Error("disk");
    const cases: Array<[MlaError, string, string]> = [
      [new CheckpointError("io", "read failed", { cause }), "CheckpointError", "io"],
      [new ChunkError("bad_magic", "magic"), "ChunkError", "bad_magic"],
      [new ClientReportError("bad report"), "ClientReportError", "invalid_report"],
      [new GeometryError("odd width"), "GeometryError", "invalid_geometry"],
      [new RuntimeError("bad_model", "no lm_head"), "RuntimeError", "bad_model"],
      [new UserError("usage", "--d-kv"), "UserError", "usage"],
    ];
    for (const [err, name, code] of cases) {
      expect(err).toBeInstanceOf(MlaError);
      expect(err).toBeInstanceOf(Error);
      expect([err.name, err.code]).toEqual([name, code]);
    }
    expect(new GeometryError("x")).toBeInstanceOf(KernelError);
    expect(new CheckpointError("io", "read failed", { cause }).cause).toBe(cause);
  });
});
