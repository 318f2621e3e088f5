// The chat demo's HTTP server: bundles client/demo/app.ts with esbuild, serves the page, the model bundle the page
// loads by default at /bundle/ (the converted tiny fixture, client/demo/model, packed by `mla-edge pack` into
// build/demo-bundle/ on first start), the converted model itself (/model/), sample images from the fixture's eval set,
// the codec .wasm and onnxruntime-web's dist, and proxies /v1/* to the edge store (same origin: no CORS). COOP/COEP
// make the page cross-origin isolated for ORT.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { execFile } from "node:child_process";
import { readFile, stat } from "node:fs/promises";
import { promisify } from "node:util";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const DEMO = join(ROOT, "client", "demo");

const MIME: Record<string, string> = {
  ".js": "text/javascript",
  ".mjs": "text/javascript",
  ".wasm": "application/wasm",
  ".html": "text/html; charset=utf-8",
  ".json": "application/json",
  ".onnx": "application/octet-stream",
  ".safetensors": "application/octet-stream",
  ".bin": "application/octet-stream",
  ".css": "text/css",
};

export interface DemoServerOptions {
  /** The edge store's origin (wrangler dev), e.g. http://127.0.0.1:8787. */
  readonly edgeUrl: string;
  /** Tenant API key the page uses to create sessions (local development only). */
  readonly apiKey: string;
  readonly port?: number;
  readonly host?: string;
  /** Extra entry points to bundle and serve at /<name>.js (tests add their in-page harness). */
  readonly extraEntries?: Readonly<Record<string, string>>;
  /** Sample images served at /samples.json (default 12 eval cases). */
  readonly samples?: number;
  /**
   * The bundle folder served at /bundle/ (manifest.json + shards + side files). Default build/demo-bundle, packed from
   * client/demo/model (`mla-edge pack`, int4 weights, block 32) when it is missing or older than the model.
   */
  readonly bundleDir?: string;
}

/** Packs client/demo/model into `dir` with the CLI (a child process: the demo may not import convert/). */
export async function ensureDemoBundle(dir = join(ROOT, "build", "demo-bundle")): Promise<string> {
  const model = join(DEMO, "model", "model.safetensors");
  const manifest = await stat(join(dir, "manifest.json")).catch(() => null);
  if (manifest !== null && manifest.mtimeMs >= (await stat(model)).mtimeMs) return dir;
  const { rm } = await import("node:fs/promises");
  await rm(dir, { recursive: true, force: true });
  await promisify(execFile)(process.execPath, [join(ROOT, "bin", "mla-edge.mjs"), "pack", "--model", join(DEMO, "model"), "--out", dir, "--weights", "int4", "--block", "32"], { cwd: ROOT });
  return dir;
}

export interface DemoServer {
  readonly url: string;
  close(): Promise<void>;
}

async function bundle(entry: string): Promise<string> {
  const out = await build({
    entryPoints: [entry],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
    // onnxruntime-web is loaded at run time from /ort/ (its wasm files sit next to it there)
    external: ["/ort/*"],
    logLevel: "silent",
  });
  return out.outputFiles[0].text;
}

/** A file under `base` (no escaping it), or null. */
async function fileUnder(base: string, rel: string): Promise<Buffer | null> {
  const p = normalize(join(base, rel));
  if (!p.startsWith(base)) return null;
  try {
    return await readFile(p);
  } catch {
    return null;
  }
}

async function proxy(req: IncomingMessage, res: ServerResponse, edgeUrl: string): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const headers = new Headers();
  for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string" && k !== "host" && k !== "connection") headers.set(k, v);
  const upstream = await fetch(edgeUrl + req.url, { method: req.method, headers, body: chunks.length > 0 ? Buffer.concat(chunks) : undefined });
  const out: Record<string, string> = {};
  upstream.headers.forEach((v, k) => {
    if (k !== "content-encoding" && k !== "content-length" && k !== "transfer-encoding") out[k] = v;
  });
  res.writeHead(upstream.status, out);
  if (upstream.body === null) return void res.end();
  // stream restore bodies through without buffering
  const reader = upstream.body.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    if (!res.write(value)) await new Promise((r) => res.once("drain", r));
  }
  res.end();
}

export async function startDemoServer(options: DemoServerOptions): Promise<DemoServer> {
  const scripts = new Map<string, string>([
    ["/app.js", await bundle(join(DEMO, "app.ts"))],
    ["/engine-worker.js", await bundle(join(DEMO, "engine-worker.ts"))],
  ]);
  for (const [name, entry] of Object.entries(options.extraEntries ?? {})) scripts.set(`/${name}.js`, await bundle(entry));
  const evalLines = (await readFile(join(ROOT, "fixtures", "tiny-qwen-vl", "eval.jsonl"), "utf8")).split("\n").filter((l) => l.length > 0);
  const samples = JSON.stringify(
    evalLines.slice(0, options.samples ?? 12).map((l) => {
      const c = JSON.parse(l) as { patches_u8: string; turns: { question: string; answer: string }[] };
      return { patches_u8: c.patches_u8, questions: c.turns.map((t) => t.question), answers: c.turns.map((t) => t.answer) };
    }),
  );
  const config = JSON.stringify({ apiKey: options.apiKey });
  const bundleDir = options.bundleDir ?? (await ensureDemoBundle());

  const server: Server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? "/", "http://x");
      const p = url.pathname;
      res.setHeader("Cross-Origin-Opener-Policy", "same-origin");
      res.setHeader("Cross-Origin-Embedder-Policy", "require-corp");
      res.setHeader("Cache-Control", "no-store");
      if (p.startsWith("/v1/")) return proxy(req, res, options.edgeUrl);
      let body: Buffer | string | null = null;
      let type = MIME[extname(p)] ?? "application/octet-stream";
      if (p === "/" || p === "/index.html") {
        body = await readFile(join(DEMO, "index.html"));
        type = MIME[".html"];
      } else if (scripts.has(p)) body = scripts.get(p)!;
      else if (p === "/samples.json") body = samples;
      else if (p === "/config.json") body = config;
      else if (p.startsWith("/model/")) body = await fileUnder(join(DEMO, "model"), p.slice(7));
      else if (p.startsWith("/bundle/")) body = await fileUnder(bundleDir, p.slice(8));
      else if (p === "/codec.simd.wasm" || p === "/codec.wasm") body = await fileUnder(join(ROOT, "build"), p.slice(1));
      else if (p.startsWith("/ort/")) body = await fileUnder(join(ROOT, "node_modules", "onnxruntime-web", "dist"), p.slice(5));
      if (body === null) {
        res.writeHead(404, { "content-type": "text/plain" });
        return void res.end(`not found: ${p}`);
      }
      res.writeHead(200, { "content-type": type });
      res.end(body);
    })().catch((e: unknown) => {
      if (!res.headersSent) res.writeHead(502, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { code: "internal", message: `demo server: ${String(e)}` } }));
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, options.host ?? "127.0.0.1", resolve));
  const addr = server.address();
  if (addr === null || typeof addr === "string") throw new Error("demo server has no TCP address");
  return {
    url: `http://${options.host ?? "127.0.0.1"}:${addr.port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
