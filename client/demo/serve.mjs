#!/usr/bin/env node
// `node client/demo/serve.mjs`: the chat demo on its own — starts the edge store (wrangler dev, state in .state/, the
// dev secrets of scripts/start.mjs) and the demo page, and prints the page's URL. Also importable:
// `const { startDemoServer } = await import("./client/demo/serve.mjs")` (registers tsx for the TypeScript sources).
import { pathToFileURL } from "node:url";
import { register } from "tsx/esm/api";

register();
const server = await import("./server.ts");
export const startDemoServer = server.startDemoServer;

// pathToFileURL: a checkout path with spaces or other escaped characters still matches import.meta.url.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { readFileSync, existsSync } = await import("node:fs");
  const { join } = await import("node:path");
  const { ROOT, startDev } = await import("../../scripts/dev.mjs");
  const secrets = join(ROOT, ".state", "dev-secrets.env");
  if (!existsSync(secrets)) {
    console.error(`mla-edge demo: ${secrets} is missing: run \`npm start\` once to create the local secrets`);
    process.exit(1);
  }
  const line = readFileSync(secrets, "utf8").split("\n").find((l) => l.startsWith("TENANT_KEYS="));
  const apiKey = Object.values(JSON.parse(line.slice("TENANT_KEYS=".length).replace(/^'|'$/g, "")))[0];
  const edge = await startDev({ port: Number(process.env.EDGE_PORT ?? 8787), persistTo: join(ROOT, ".state"), envFile: secrets, stdio: "inherit", sharedRegistry: true });
  const demo = await startDemoServer({ edgeUrl: edge.url, apiKey, port: Number(process.env.DEMO_PORT ?? 8788) });
  console.error(`mla-edge demo: chat page at ${demo.url} (edge store ${edge.url})`);
  for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => void Promise.all([demo.close(), edge.stop("SIGINT")]).then(() => process.exit(0)));
}
