// The SDK as an npm package: client/scripts/build.mjs makes the ESM bundle and declarations; a consumer folder with the
// package under node_modules imports it through the `exports` map in plain Node (no tsx) and type-checks against it.

import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "mla-edge-client-pkg-"));
  const pkg = join(dir, "node_modules", "@mla-edge", "client");
  mkdirSync(pkg, { recursive: true });
  cpSync(join(ROOT, "client", "package.json"), join(pkg, "package.json"));
  execFileSync(process.execPath, [join(ROOT, "client", "scripts", "build.mjs"), "--out", join(pkg, "dist")], { cwd: ROOT, stdio: "pipe" });
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("npm package", () => {
  it("should import through the exports map in plain Node and talk to a store through an injected fetch", () => {
    const script = `
      import { createClient, NotFoundError, MlaEdge } from "@mla-edge/client";
      const fetch = async (url) => new Response(JSON.stringify({ error: { code: "not_found", message: "no session " + new URL(url).pathname } }), { status: 404 });
      const client = createClient({ baseUrl: "http://edge.test", fetch });
      try { await client.store.sessions.retrieve("abc", { token: "t" }); console.log("no error"); }
      catch (e) { console.log(JSON.stringify({ isNotFound: e instanceof NotFoundError, same: MlaEdge.NotFoundError === NotFoundError, code: e.code, message: e.message })); }
    `;
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], { cwd: dir, encoding: "utf8" });
    expect(JSON.parse(out)).toEqual({ isNotFound: true, same: true, code: "not_found", message: "404 not_found: no session /v1/sessions/abc" });
  });

  it("should type-check a consumer against the declarations (and reject a wrong call)", () => {
    const tsc = join(ROOT, "node_modules", "typescript", "bin", "tsc");
    const config = { compilerOptions: { strict: true, module: "nodenext", moduleResolution: "nodenext", target: "es2022", lib: ["es2023", "dom"], noEmit: true, skipLibCheck: false, types: [] }, include: ["consumer.ts"] };
    writeFileSync(join(dir, "tsconfig.json"), JSON.stringify(config));
    writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module" }));
    const good = `
      import { createClient, type ChatSession, type ChatUsage, type CodecParams } from "@mla-edge/client";
      const client = createClient({ baseUrl: "http://127.0.0.1:8787", apiKey: "k" });
      const codec: CodecParams = { bits: 4, group: 32, axis: "token", rope: "int8" };
      export async function turn(s: ChatSession): Promise<ChatUsage> {
        for await (const ev of s.chat({ messages: [{ role: "user", content: "color at b3" }], stream: true, maxTokens: 4 })) if (ev.type === "done") return ev.usage;
        throw new Error("no answer");
      }
      export const created = client.sessions.create({ codec });
    `;
    writeFileSync(join(dir, "consumer.ts"), good);
    execFileSync(process.execPath, [tsc, "-p", dir], { cwd: dir, encoding: "utf8" });
    writeFileSync(join(dir, "consumer.ts"), good.replace('bits: 4', 'bits: 5'));
    let diagnostics = "";
    try {
      execFileSync(process.execPath, [tsc, "-p", dir], { cwd: dir, encoding: "utf8", stdio: "pipe" });
    } catch (e) {
      diagnostics = String((e as { stdout?: string }).stdout);
    }
    expect(diagnostics).toMatch(/consumer\.ts\(\d+,\d+\): error TS2322: Type '5' is not assignable to type 'Bits'/);
  });
});
