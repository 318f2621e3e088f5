// Starts `wrangler dev` (offline, platform.md §3) on a free loopback port for Node-side tests that need a real HTTP
// server, and stops it again (SIGINT to the wrangler process we spawned stops its workerd children).
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface DevServer {
  readonly url: string;
  readonly logs: () => string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

const exited = (child: ChildProcess): Promise<void> =>
  new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once("exit", () => resolve())));

/** Starts wrangler dev with `configPath`, resolving once `readyPath` answers (any status). */
export async function startWranglerDev(configPath: string, readyPath: string, timeoutMs = 60_000): Promise<DevServer> {
  const port = await freePort();
  const persist = mkdtempSync(join(tmpdir(), "mla-edge-telemetry-"));
  const child = spawn(
    process.execPath,
    ["node_modules/wrangler/bin/wrangler.js", "dev", "-c", configPath, "--local", "--port", String(port), "--ip", "127.0.0.1", "--persist-to", persist, "--inspector-port", "0"],
    {
      env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_HIDE_BANNER: "true", CI: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let log = "";
  child.stdout?.on("data", (d: Buffer) => (log += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (log += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGINT");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited(child);
      clearTimeout(timer);
    }
    rmSync(persist, { recursive: true, force: true });
  };
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    try {
      await fetch(url + readyPath);
      return { url, logs: () => log, stop };
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  await stop();
  throw new Error(`wrangler dev did not become ready on ${url} within ${timeoutMs} ms:\n${log}`);
}
