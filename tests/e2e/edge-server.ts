// Starts the real edge store in process for one test file or benchmark: wrangler's `unstable_startWorker` (the same
// workerd runtime as `wrangler dev --local`) on a loopback port, with throwaway state and secrets, file watching off so
// edits elsewhere in the tree never restart the Worker mid-test, and the offline settings of platform.md §3.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { unstable_startWorker } from "wrangler";

export interface EdgeServer {
  readonly url: string;
  readonly apiKey: string;
  /** Bearer key of /metrics and the dashboard data. */
  readonly operatorKey: string;
  stop(): Promise<void>;
}

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

export async function startEdgeServer(): Promise<EdgeServer> {
  Object.assign(process.env, { WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_HIDE_BANNER: "true" });
  const dir = mkdtempSync(join(tmpdir(), "mla-edge-e2e-"));
  const apiKey = `e2e-key-${Math.random().toString(36).slice(2)}`;
  const operatorKey = `e2e-operator-${Math.random().toString(36).slice(2)}`;
  const envFile = join(dir, "secrets.env");
  writeFileSync(envFile, `TENANT_KEYS='${JSON.stringify({ e2e: apiKey })}'\nSIGNING_SECRET=e2e-signing-secret-0123456789\nOPERATOR_KEY=${operatorKey}\n`);
  const worker = await unstable_startWorker({
    config: join(ROOT, "wrangler.jsonc"),
    envFiles: [envFile],
    dev: { watch: false, liveReload: false, persist: join(dir, "state"), server: { hostname: "127.0.0.1", port: 0 }, inspector: false, logLevel: "warn" },
  });
  try {
    const url = (await worker.url).toString().replace(/\/$/, "");
    return {
      url,
      apiKey,
      operatorKey,
      async stop() {
        await worker.dispose();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await worker.dispose();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}
