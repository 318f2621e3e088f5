// parseBundleManifest: a packed manifest round-trips; each kind of damage is a typed BundleError naming the field.
// Planted bug seen failing before commit: the alignment check removed (the "misaligned piece" case fails).
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BundleError, parseBundleManifest } from "../../checkpoint/bundle/manifest.ts";
import { packIoError } from "../../convert/pack/errors.ts";
import { packBundle } from "../../convert/pack/pack-bundle.ts";

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- test-local damage of raw JSON

let work: string;
let good: Json;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "mla-manifest-"));
  await packBundle(resolve("fixtures/tiny-qwen-vl"), join(work, "b"), { maxShardBytes: 8 * 1024, zeroPoints: true });
  good = JSON.parse(await readFile(join(work, "b", "manifest.json"), "utf8")) as Json;
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

const damaged = (f: (m: Json) => void): Json => {
  const m = structuredClone(good);
  f(m);
  return m;
};

function expectError(json: unknown, code: string, message: RegExp): void {
  let err: unknown = null;
  try {
    parseBundleManifest(json);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(BundleError);
  expect((err as BundleError).code).toBe(code);
  expect((err as BundleError).message).toMatch(message);
}

describe("parseBundleManifest", () => {
  it("accepts what pack wrote, unchanged", () => {
    expect(parseBundleManifest(good)).toEqual(good);
  });

  it("rejects each kind of damage with a typed error naming the field", () => {
    const q = (m: Json) => m.tensors.find((t: Json) => t.kind === "matmul_nbits" && t.b.pieces.length > 1) as Json;
    expect(q(good)).toBeDefined();
    expectError(damaged((m) => (m.version = 2)), "unsupported_version", /version 2/);
    expectError(damaged((m) => (m.format = "x")), "bad_manifest", /format/);
    expectError(damaged((m) => (q(m).b.pieces[1].offset += 4)), "bad_manifest", /not 256-byte aligned/);
    expectError(damaged((m) => q(m).b.pieces.pop()), "bad_manifest", /pieces cover/);
    expectError(damaged((m) => (q(m).b.pieces[1].rowStart += 1)), "bad_manifest", /do not continue/);
    expectError(damaged((m) => (q(m).b.pieces[0].shard = 999)), "bad_manifest", /shard 999 does not exist/);
    expectError(damaged((m) => (m.shards[0].size = 16)), "bad_manifest", /runs past the end/);
    expectError(damaged((m) => (m.shards[0].sha256 = "abc")), "bad_manifest", /shards\[0\]/);
    expectError(damaged((m) => (q(m).kBlocks += 1)), "bad_manifest", /kBlocks/);
    expectError(damaged((m) => (q(m).zeroPoints.rowBytes += 1)), "bad_manifest", /zeroPoints: rowBytes/);
    expectError(damaged((m) => (m.aliases = { "lm_head.weight": "nope" })), "bad_manifest", /aliases\.lm_head\.weight/);
    expectError(damaged((m) => (m.tokenizer.tokenizer = "../etc/passwd")), "bad_manifest", /tokenizer\.tokenizer/);
    expectError(damaged((m) => m.tensors.push(m.tensors[0])), "bad_manifest", /listed twice/);
    expectError(damaged((m) => (m.tensors[0].shape = [-1, 4])), "bad_manifest", /non-negative integers/);
  });

  it("accepts an empty tensor (0 rows, no pieces) — an MLA conversion keeping every RoPE pair has an empty W_uk — but not an empty piece list for rows", () => {
    const empty = { name: "model.layers.0.self_attn.kv_proj.up_k.bias", kind: "plain", shape: [0], dtype: "f16", data: { rows: 0, rowBytes: 2, pieces: [] } };
    const parsed = parseBundleManifest(damaged((m) => m.tensors.push(empty)));
    expect(parsed.tensors.at(-1)).toEqual(empty);
    expectError(damaged((m) => m.tensors.push({ ...empty, shape: [3], data: { rows: 3, rowBytes: 2, pieces: [] } })), "bad_manifest", /pieces must be a non-empty array/);
  });
});

describe("packIoError", () => {
  it("maps errno codes to typed pack errors naming the path", () => {
    const e = (code: string) => packIoError(Object.assign(new Error(code), { code }), "/x/weights-00003.bin", "writing");
    expect(e("ENOSPC")).toMatchObject({ code: "disk_full", message: expect.stringContaining("/x/weights-00003.bin") });
    expect(e("EACCES").code).toBe("permission_denied");
    expect(e("EROFS").code).toBe("permission_denied");
    expect(e("EIO").code).toBe("io");
  });
});
