// Checks whether the local `wrangler dev` still drops requests written on a pooled proxy→Worker connection at the
// instant both ends close it for 5 s of idleness (workers-sdk #14641; docs/api.md "Restore stalls and dropped appends").
// Sends session creates at a 5.0 s cadence (±15 ms) to a fresh server and counts wrangler's plain-text
// "Your worker restarted mid-request" 503s. Run it after a wrangler upgrade: 0 drops over many requests means the
// SDK's and bench's resend (client/client.ts `neverDelivered`) no longer has anything to do.
//   node scripts/dev-proxy-drop.mjs [--requests 16] [--gap-ms 5000]
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startDev } from "./dev.mjs";

const { values } = parseArgs({ options: { requests: { type: "string", default: "16" }, "gap-ms": { type: "string", default: "5000" } } });
const requests = Number(values.requests);
const gapMs = Number(values["gap-ms"]);
const key = "dev-proxy-drop-key-0123456789";
const dir = await mkdtemp(join(tmpdir(), "mla-edge-drop-"));
const envFile = join(dir, "secrets.env");
await writeFile(envFile, `TENANT_KEYS='${JSON.stringify({ probe: key })}'\nSIGNING_SECRET=dev-proxy-drop-signing-secret-0123\n`);
const server = await startDev({ persistTo: join(dir, "state"), envFile });
const body = JSON.stringify({
  spec: { layers: 2, heads: 4, kvHeads: 2, headDim: 16, ropeDims: 4, dKv: 8, latentSpaces: 1, mropeSection: null },
  codec: { bits: 4, group: 64, axis: "token", rope: "int4" },
  model: { id: "probe/tiny", conversion: "c1" },
  chunkTokens: 64,
});
const counts = { created: 0, dropped: 0, other: 0 };
try {
  for (let i = 0; i < requests; i++) {
    await new Promise((r) => setTimeout(r, gapMs + ((i % 3) - 1) * 15));
    const res = await fetch(`${server.url}/v1/sessions`, { method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }, body });
    const text = await res.text();
    if (res.status === 201) counts.created++;
    else if (res.status === 503 && text.startsWith("Your worker restarted mid-request")) counts.dropped++;
    else {
      counts.other++;
      process.stderr.write(`unexpected ${res.status}: ${text.slice(0, 200)}\n`);
    }
    process.stderr.write(`${i + 1}/${requests}: ${res.status}\n`);
  }
} finally {
  await server.stop("SIGINT");
  await rm(dir, { recursive: true, force: true });
}
console.log(JSON.stringify({ requests, gapMs, ...counts }));
