// An HTTP proxy in front of the edge store that breaks restore responses on request: the next restore is cut after
// a given number of body bytes by destroying the client's socket (what a dropped mobile connection looks like to
// fetch). Every other request passes through untouched. Tests use it to check that restores resume.

import { createServer, request as httpRequest, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";

export interface CuttingProxy {
  readonly url: string;
  /** Query strings of the restore requests seen so far (`?from=…&to=…`, or "" for a whole restore). */
  readonly restores: string[];
  /** Body bytes of each restore response that was not cut. */
  readonly restoreBytes: number[];
  /** Cut the next restore responses after these many body bytes, one per response. */
  cut(afterBytes: readonly number[]): void;
  /** Runs after a cut and before the next restore request is forwarded (e.g. to change the session meanwhile). */
  onCut(hook: (() => Promise<void>) | null): void;
  stop(): Promise<void>;
}

const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding"]);

function forwardHeaders(h: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
  return out;
}

export async function startCuttingProxy(upstream: string): Promise<CuttingProxy> {
  const target = new URL(upstream);
  const restores: string[] = [];
  const restoreBytes: number[] = [];
  let cuts: number[] = [];
  let hook: (() => Promise<void>) | null = null;
  let afterCut: Promise<void> = Promise.resolve();

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://proxy");
    const isRestore = req.method === "GET" && /^\/v1\/sessions\/[^/]+\/chunks$/.test(url.pathname);
    const forward = () => {
      const cutAt = isRestore ? cuts.shift() : undefined;
      if (isRestore) restores.push(url.search);
      const up = httpRequest(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...forwardHeaders(req.headers), host: target.host } },
        (upRes) => {
          const headers = forwardHeaders(upRes.headers);
          if (cutAt !== undefined) delete headers["content-length"];
          res.writeHead(upRes.statusCode ?? 502, headers);
          let sent = 0;
          upRes.on("data", (d: Buffer) => {
            if (cutAt === undefined) {
              sent += d.length;
              res.write(d);
              return;
            }
            if (sent >= cutAt) return;
            const take = d.subarray(0, cutAt - sent);
            sent += take.length;
            if (sent < cutAt) {
              res.write(take);
              return;
            }
            // The written bytes reach the client, then the connection drops without ending the body. The upstream
            // response is still read to its end and discarded (the store sees a normal download): destroying it would
            // make wrangler's dev proxy treat the hop as failed and hold the next request back.
            res.write(take, () => res.socket?.destroy());
            afterCut = hook ? hook() : Promise.resolve();
          });
          upRes.on("end", () => {
            if (cutAt === undefined) {
              if (isRestore) restoreBytes.push(sent);
              res.end();
            }
          });
        },
      );
      up.on("error", () => res.destroy());
      req.pipe(up);
    };
    if (isRestore) void afterCut.then(forward, forward);
    else forward();
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    restores,
    restoreBytes,
    cut: (afterBytes) => void (cuts = [...afterBytes]),
    onCut: (h) => void (hook = h),
    stop: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}
