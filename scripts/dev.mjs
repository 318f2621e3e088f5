// Starts the edge store locally: `wrangler dev --local` on 127.0.0.1 with state under --persist-to and the offline
// flags of shared/docs/platform.md §3 (no telemetry, no Request.cf fetch, no update check). Used by `npm start`, the
// integration tests (tests/store) and the store benchmark. The child runs in its own process group so stop() and
// kill() reach wrangler's workerd children too.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const WRANGLER = join(ROOT, "node_modules", "wrangler", "bin", "wrangler.js");

/** Environment that keeps wrangler dev off the network. */
export const OFFLINE_ENV = {
  WRANGLER_SEND_METRICS: "false",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
  WRANGLER_HIDE_BANNER: "true",
};

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

/** Whether `port` on 127.0.0.1 can be bound now (nothing else listens there). */
export function portIsFree(port) {
  return new Promise((resolveFree) => {
    const server = createServer();
    server.unref();
    server.once("error", () => resolveFree(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolveFree(true)));
  });
}

/** The wrangler dev argument list. */
export function devArgs({ port, persistTo, inspectorPort, vars = {}, envFile }) {
  const args = [WRANGLER, "dev", "--local", "--port", String(port), "--ip", "127.0.0.1", "--persist-to", persistTo];
  if (inspectorPort !== undefined) args.push("--inspector-port", String(inspectorPort));
  if (envFile !== undefined) args.push("--env-file", envFile);
  for (const [k, v] of Object.entries(vars)) args.push("--var", `${k}:${v}`);
  return args;
}

/**
 * Spawns wrangler dev and resolves once GET /v1/health answers 200. Unless `sharedRegistry` is set, the server gets
 * its own dev registry (WRANGLER_REGISTRY_PATH in a temp dir): wrangler's default is one registry for every local
 * `wrangler dev`, so concurrent test and benchmark servers of the same Worker name would see each other's entries.
 * `npm start` keeps the shared one, so other local Workers can still bind to the store.
 * @param {{port?: number, persistTo: string, vars?: Record<string,string>, envFile?: string, stdio?: "inherit"|"pipe", readyTimeoutMs?: number, sharedRegistry?: boolean}} options
 */
export async function startDev(options) {
  const port = options.port ?? (await freePort());
  const inspectorPort = await freePort();
  const registry = options.sharedRegistry ? null : mkdtempSync(join(tmpdir(), "mla-edge-registry-"));
  const child = spawn(process.execPath, devArgs({ ...options, port, inspectorPort }), {
    cwd: ROOT,
    env: { ...process.env, ...OFFLINE_ENV, ...(registry !== null ? { WRANGLER_REGISTRY_PATH: registry } : {}) },
    stdio: options.stdio === "inherit" ? "inherit" : ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let log = "";
  const keep = (d) => {
    log = (log + d.toString()).slice(-20_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise((r) => child.once("exit", (code, signal) => r({ code, signal })));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000);
  let ready = false;
  while (!ready) {
    if (child.exitCode !== null || child.signalCode !== null) {
      if (registry !== null) rmSync(registry, { recursive: true, force: true });
      throw new Error(`wrangler dev exited before it was ready:\n${log}`);
    }
    if (Date.now() > deadline) {
      killGroup(child, "SIGKILL");
      if (registry !== null) rmSync(registry, { recursive: true, force: true });
      throw new Error(`wrangler dev not ready after ${options.readyTimeoutMs ?? 60_000} ms:\n${log}`);
    }
    try {
      const res = await fetch(`${url}/v1/health`);
      ready = res.status === 200;
      await res.body?.cancel();
    } catch {
      // not listening yet
    }
    if (!ready) await new Promise((r) => setTimeout(r, 150));
  }
  return {
    url,
    port,
    child,
    log: () => log,
    /** SIGINT (graceful: wrangler stops workerd) or SIGKILL (crash) to the whole process group; resolves on exit. */
    async stop(signal = "SIGINT") {
      if (child.exitCode === null && child.signalCode === null) killGroup(child, signal);
      const timer = setTimeout(() => killGroup(child, "SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
      // workerd children of a SIGKILLed wrangler may outlive it for a moment: make sure the group is gone.
      killGroup(child, "SIGKILL");
      await waitGroupGone(child.pid);
      if (registry !== null) rmSync(registry, { recursive: true, force: true });
    },
  };
}

function killGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // group already gone
  }
}

async function waitGroupGone(pgid) {
  for (let i = 0; i < 100; i++) {
    try {
      process.kill(-pgid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
