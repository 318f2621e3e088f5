// `npm start` with a port already taken: a one-line message naming the variable to change and exit code 1, before
// wrangler starts (its own message suggests a --port flag that `npm start` does not take); nothing is written.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, portIsFree, ROOT } from "../../scripts/dev.mjs";

let taken: Server;
let takenPort = 0;

beforeAll(async () => {
  taken = createServer();
  await new Promise<void>((ok) => taken.listen(0, "127.0.0.1", ok));
  takenPort = (taken.address() as { port: number }).port;
});

afterAll(() => new Promise<void>((ok) => taken.close(() => ok())));

function start(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return new Promise((ok, fail) => {
    const p = spawn(process.execPath, [join(ROOT, "scripts", "start.mjs")], { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    p.on("error", fail);
    p.on("close", (code) => ok({ code, stderr }));
  });
}

describe("npm start port check", () => {
  it("should tell a taken port from a free one", async () => {
    expect(await portIsFree(takenPort)).toBe(false);
    expect(await portIsFree(await freePort())).toBe(true);
  });

  it.each([
    ["PORT", (p: number, free: number) => ({ PORT: String(p), DEMO_PORT: String(free) })],
    ["DEMO_PORT", (p: number, free: number) => ({ PORT: String(free), DEMO_PORT: String(p) })],
  ])("should exit 1 naming %s when its port is taken", async (name, env) => {
    const secretsExisted = existsSync(join(ROOT, ".state", "dev-secrets.env"));
    const { code, stderr } = await start(env(takenPort, await freePort()));
    expect(code).toBe(1);
    expect(stderr.trim()).toBe(`mla-edge: port ${takenPort} on 127.0.0.1 is in use (another \`npm start\`?); stop it or choose another: ${name}=<port> npm start`);
    expect(existsSync(join(ROOT, ".state", "dev-secrets.env"))).toBe(secretsExisted);
  });
});
