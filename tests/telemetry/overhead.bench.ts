// Recording overhead on the request path: the telemetry test Worker under Miniflare (real workerd, direct HTTP, no
// wrangler proxy), the same append stand-in with TELEMETRY on and off, rounds interleaved so drift hits both alike.
// Run: `node --import tsx tests/telemetry/overhead.bench.ts --json` → one JSON object on stdout. The stand-in append
// answers in ~1–2 ms, so the percentage is an upper bound for the real store's 8–15 ms appends.
import { build } from "esbuild";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
// wrangler 4.86's own Miniflare 4 runs here; the top-level `miniflare` types are the plugin's 5.x beta, so describe the
// little this bench uses instead of importing them.
interface MiniflareType {
  readonly ready: Promise<URL>;
  dispose(): Promise<void>;
}
type MiniflareConstructor = new (options: Record<string, unknown>) => MiniflareType;

// The Miniflare wrangler 4.86 itself runs on (v4, platform.md §5); the top-level node_modules/miniflare is a v5 beta
// pulled in by another package, with a different options shape.
const miniflarePath = createRequire(createRequire(import.meta.url).resolve("wrangler/package.json")).resolve("miniflare");
const { Miniflare } = (await import(pathToFileURL(miniflarePath).href)) as { Miniflare: MiniflareConstructor };

const { values: args } = parseArgs({
  options: { json: { type: "boolean", default: false }, rounds: { type: "string", default: "10" }, requests: { type: "string", default: "200" } },
});
const ROUNDS = Number(args.rounds);
const PER_ROUND = Number(args.requests);
const BODY = new Uint8Array(4096);

async function bundle(dir: string): Promise<string> {
  const out = join(dir, "worker.js");
  await build({
    entryPoints: ["tests/telemetry-worker/entry.ts"],
    bundle: true,
    format: "esm",
    platform: "neutral",
    external: ["cloudflare:*"],
    outfile: out,
    logLevel: "silent",
    // The wrangler `Text` rule for uPlot's dist files, as an esbuild plugin.
    plugins: [
      {
        name: "uplot-text",
        setup(b) {
          b.onLoad({ filter: /uPlot\.(iife\.min\.js|min\.css)$/ }, (a) => ({ contents: readFileSync(a.path, "utf8"), loader: "text" }));
        },
      },
    ],
  });
  return out;
}

async function start(scriptPath: string, telemetry: "on" | "off"): Promise<{ mf: MiniflareType; url: URL }> {
  const mf = new Miniflare({
    modules: true,
    scriptPath,
    // Module names are paths relative to this root; the bundle lives in a temp dir outside the repo.
    modulesRoot: dirname(scriptPath),
    compatibilityDate: "2026-04-01",
    durableObjects: { METRICS: { className: "MetricsObject", useSQLite: true } },
    bindings: { OPERATOR_KEY: "bench", TELEMETRY: telemetry },
    cf: false,
    host: "127.0.0.1",
    port: 0,
  });
  return { mf, url: await mf.ready };
}

async function round(url: URL, into: number[]): Promise<void> {
  for (let i = 0; i < PER_ROUND; i++) {
    const t0 = performance.now();
    const r = await fetch(new URL("/v1/sessions/bench/turns", url), { method: "POST", body: BODY });
    await r.arrayBuffer();
    into.push(performance.now() - t0);
  }
}

const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
};

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "mla-edge-telemetry-bench-"));
  try {
    const script = await bundle(dir);
    const on = await start(script, "on");
    const off = await start(script, "off");
    try {
      const lat = { on: [] as number[], off: [] as number[] };
      await round(on.url, []); // warm-up
      await round(off.url, []);
      for (let r = 0; r < ROUNDS; r++) {
        // Alternate which mode goes first so neither always runs on a warmer machine.
        if (r % 2 === 0) {
          await round(on.url, lat.on);
          await round(off.url, lat.off);
        } else {
          await round(off.url, lat.off);
          await round(on.url, lat.on);
        }
      }
      // Recording really happened in "on" (and not in "off").
      const scrape = async (u: URL) =>
        (await (await fetch(new URL("/metrics", u), { headers: { authorization: "Bearer bench" } })).text()).match(
          /^mla_edge_requests_total\{op="append",status="201"\} (\d+)$/m,
        )?.[1] ?? "0";
      const recorded = { on: Number(await scrape(on.url)), off: Number(await scrape(off.url)) };
      const p50 = { on: quantile(lat.on, 0.5), off: quantile(lat.off, 0.5) };
      const result = {
        bench: "telemetry-overhead",
        route: "POST /v1/sessions/:id/turns (stand-in, 4 KiB body)",
        requestsPerMode: lat.on.length,
        appendP50Ms: p50,
        appendP99Ms: { on: quantile(lat.on, 0.99), off: quantile(lat.off, 0.99) },
        overheadP50Pct: ((p50.on - p50.off) / p50.off) * 100,
        recordedAppends: recorded,
      };
      if (args.json) process.stdout.write(JSON.stringify(result) + "\n");
      else console.table({ on: { p50: p50.on, p99: result.appendP99Ms.on }, off: { p50: p50.off, p99: result.appendP99Ms.off } });
    } finally {
      await Promise.all([on.mf.dispose(), off.mf.dispose()]);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
