// `npm run -s deploy:check [-- --json]`: bundles the edge store exactly as `wrangler deploy` would upload it
// (`wrangler deploy --dry-run --outdir DIR`, offline, no account needed) and checks the upload against the Workers size
// limits. Exit 1 when a limit is exceeded or the dry run fails. CI runs it through tests/deploy/dry-run.test.ts.
//
// Limits checked (Cloudflare's published Workers limits; the strictest revision applies):
//   - compressed (gzip) upload ≤ 3 MB: the Workers Free plan's limit until 2026 (Paid: 10 MB);
//   - uncompressed upload ≤ 64 MiB: the single limit of the 2026 revision.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { OFFLINE_ENV, ROOT } from "./dev.mjs";

export const LIMITS = { gzipBytes: 3 * 1000 * 1000, rawBytes: 64 * 1024 * 1024 };
const WRANGLER = join(ROOT, "node_modules", "wrangler", "bin", "wrangler.js");

/**
 * Runs the dry run into a temporary folder and measures what would be uploaded (source maps and wrangler's README
 * are not uploaded). Returns the report; the folder is removed unless `keep` is set.
 * @param {{keep?: boolean, limits?: {gzipBytes: number, rawBytes: number}}} [options]
 */
export function deployDryRun({ keep = false, limits = LIMITS } = {}) {
  const outdir = mkdtempSync(join(tmpdir(), "mla-edge-deploy-"));
  try {
    const run = spawnSync(process.execPath, [WRANGLER, "deploy", "--dry-run", "--outdir", outdir], {
      cwd: ROOT,
      env: { ...process.env, ...OFFLINE_ENV },
      encoding: "utf8",
    });
    if (run.status !== 0) {
      return { ok: false, error: `wrangler deploy --dry-run exited ${run.status}: ${(run.stderr || run.stdout).trim().slice(-2000)}`, files: [] };
    }
    const files = readdirSync(outdir)
      .filter((name) => !name.endsWith(".map") && name !== "README.md")
      .map((name) => {
        const bytes = readFileSync(join(outdir, name));
        return { name, rawBytes: bytes.length, gzipBytes: gzipSync(bytes, { level: 9 }).length };
      });
    const rawBytes = files.reduce((s, f) => s + f.rawBytes, 0);
    const gzipBytes = files.reduce((s, f) => s + f.gzipBytes, 0);
    const bindings = [...run.stdout.matchAll(/env\.(\w+) \((\w+)\)\s+Durable Object/g)].map((m) => ({ name: m[1], className: m[2] }));
    const ok = gzipBytes <= limits.gzipBytes && rawBytes <= limits.rawBytes;
    return { ok, rawBytes, gzipBytes, limits, files, durableObjects: bindings, outdir: keep ? outdir : undefined };
  } finally {
    if (!keep) rmSync(outdir, { recursive: true, force: true });
  }
}

if (import.meta.url === (await import("node:url")).pathToFileURL(process.argv[1] ?? "").href) {
  const report = deployDryRun();
  if (process.argv.includes("--json")) {
    console.log(JSON.stringify(report));
  } else if (report.error !== undefined) {
    console.error(`mla-edge: ${report.error}`);
  } else {
    const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
    for (const f of report.files) console.log(`${f.name.padEnd(60)} ${kib(f.rawBytes).padStart(12)}  gzip ${kib(f.gzipBytes)}`);
    console.log(`upload: ${kib(report.rawBytes)} (limit ${kib(LIMITS.rawBytes)}), gzip ${kib(report.gzipBytes)} (limit ${kib(LIMITS.gzipBytes)}): ${report.ok ? "ok" : "OVER THE LIMIT"}`);
  }
  process.exit(report.ok ? 0 : 1);
}
