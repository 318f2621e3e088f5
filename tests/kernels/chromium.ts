// Drives Debian Chromium (WebGPU on SwiftShader, platform.md §9.1) with playwright-core: bundles an entry with
// esbuild, serves it from 127.0.0.1 (a secure context) with COOP/COEP (needed by onnxruntime-web threads), and
// returns the page. Used by the Chromium kernel test and by the kernels benchmark.
import { createServer, type Server } from "node:http";
import { readFile, stat } from "node:fs/promises";
import { extname, join, normalize, resolve } from "node:path";
import { build } from "esbuild";
import { chromium, type Browser, type Page } from "playwright-core";
import { hasSystemTool, SYSTEM_TOOLS } from "../helpers/system-tools.ts";

export const CHROMIUM_PATH = SYSTEM_TOOLS.chromium.path;

export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
  "--disable-dev-shm-usage",
  "--enable-unsafe-webgpu",
  "--use-webgpu-adapter=swiftshader",
  "--enable-unsafe-swiftshader",
];

/** For benchmarks; tests use skipWithout(…, "chromium") from ../helpers/system-tools.ts. */
export function chromiumAvailable(): boolean {
  return hasSystemTool("chromium");
}

const MIME: Record<string, string> = {
  ".js": "text/javascript",
  ".mjs": "text/javascript",
  ".wasm": "application/wasm",
  ".html": "text/html",
  ".json": "application/json",
};

export interface BrowserSession {
  readonly page: Page;
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Bundles `entry`, serves it (plus `/ort/` = onnxruntime-web/dist when asked, and the files of `serveDir.dir` under
 * `serveDir.prefix`, each request reported to `serveDir.onRequest`) and opens it in Chromium.
 */
export async function openInChromium(
  entry: string,
  opts: { serveOrt?: boolean; serveDir?: { prefix: string; dir: string; onRequest?: (file: string, bytes: number) => void } } = {},
): Promise<BrowserSession> {
  const root = resolve(import.meta.dirname, "../..");
  const bundled = await build({
    entryPoints: [entry],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
    external: ["/ort/*"],
    logLevel: "silent",
  });
  const bundle = bundled.outputFiles[0].text;
  const ortDir = join(root, "node_modules/onnxruntime-web/dist");
  const server: Server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? "/", "http://127.0.0.1");
      res.setHeader("Cross-Origin-Opener-Policy", "same-origin");
      res.setHeader("Cross-Origin-Embedder-Policy", "require-corp");
      res.setHeader("Cross-Origin-Resource-Policy", "same-origin");
      if (url.pathname === "/") {
        res.setHeader("Content-Type", "text/html");
        res.end('<!doctype html><meta charset="utf-8"><title>mla-edge kernels</title><script type="module" src="/bundle.js"></script>');
        return;
      }
      if (url.pathname === "/bundle.js") {
        res.setHeader("Content-Type", "text/javascript");
        res.end(bundle);
        return;
      }
      const sd = opts.serveDir;
      if (sd && url.pathname.startsWith(sd.prefix)) {
        const rel = decodeURIComponent(url.pathname.slice(sd.prefix.length));
        const file = normalize(join(sd.dir, rel));
        if (file.startsWith(sd.dir) && (await stat(file).catch(() => null))?.isFile()) {
          const bytes = await readFile(file);
          sd.onRequest?.(rel, bytes.byteLength);
          res.setHeader("Content-Type", MIME[extname(file)] ?? "application/octet-stream");
          res.end(bytes);
          return;
        }
      }
      if (opts.serveOrt && url.pathname.startsWith("/ort/")) {
        const file = normalize(join(ortDir, url.pathname.slice(5)));
        if (file.startsWith(ortDir) && (await stat(file).catch(() => null))?.isFile()) {
          res.setHeader("Content-Type", MIME[extname(file)] ?? "application/octet-stream");
          res.end(await readFile(file));
          return;
        }
      }
      res.statusCode = 404;
      res.end("not found");
    })();
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  let browser: Browser | null = null;
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    const url = `http://127.0.0.1:${port}/`;
    await page.goto(url);
    await page.waitForFunction(() => document.readyState === "complete");
    if (errors.length) throw new Error(`page errors: ${errors.join("; ")}`);
    const b = browser;
    return {
      page,
      url,
      async close() {
        await b.close();
        await new Promise<void>((ok) => server.close(() => ok()));
      },
    };
  } catch (e) {
    await browser?.close();
    server.close();
    throw e;
  }
}
