// `npm start`: the edge store on http://127.0.0.1:8787 with state in .state/ (wrangler dev, offline) and the chat demo
// page on http://127.0.0.1:8788. On first run it writes local-only secrets to .state/dev-secrets.env (a dev tenant key,
// signing secret, operator key) and prints them.
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { portIsFree, ROOT, startDev } from "./dev.mjs";

const ports = { PORT: Number(process.env.PORT ?? 8787), DEMO_PORT: Number(process.env.DEMO_PORT ?? 8788) };
// Checked up front: wrangler's own message suggests a --port flag that `npm start` does not take.
for (const [name, port] of Object.entries(ports)) {
  if (!(await portIsFree(port))) {
    console.error(`mla-edge: port ${port} on 127.0.0.1 is in use (another \`npm start\`?); stop it or choose another: ${name}=<port> npm start`);
    process.exit(1);
  }
}

const stateDir = join(ROOT, ".state");
const secretsFile = join(stateDir, "dev-secrets.env");
mkdirSync(stateDir, { recursive: true });
if (!existsSync(secretsFile)) {
  const key = () => randomBytes(24).toString("base64url");
  const tenants = JSON.stringify({ dev: `dev-${key()}` });
  writeFileSync(secretsFile, `TENANT_KEYS='${tenants}'\nSIGNING_SECRET=${key()}\nOPERATOR_KEY=${key()}\n`, { mode: 0o600 });
}
const tenantLine = readFileSync(secretsFile, "utf8").split("\n").find((l) => l.startsWith("TENANT_KEYS="));
console.error(`mla-edge: local secrets in ${secretsFile} (${tenantLine ?? "TENANT_KEYS missing"})`);

const server = await startDev({ port: ports.PORT, persistTo: stateDir, envFile: secretsFile, stdio: "inherit", sharedRegistry: true });
console.error(`mla-edge: edge store ready at ${server.url} (state in ${stateDir})`);
const { startDemoServer } = await import("../client/demo/serve.mjs");
const apiKey = Object.values(JSON.parse((tenantLine ?? "").slice("TENANT_KEYS=".length).replace(/^'|'$/g, "")))[0];
const demo = await startDemoServer({ edgeUrl: server.url, apiKey, port: ports.DEMO_PORT });
console.error(`mla-edge: chat demo at ${demo.url}`);
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    void demo
      .close()
      .then(() => server.stop("SIGINT"))
      .then(() => process.exit(0));
  });
}
