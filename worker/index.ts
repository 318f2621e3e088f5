// Worker entry: the HTTP front of the edge store. Routes are added per resource under worker/routes/.
import { Hono } from "hono";
import { FORMAT_VERSION } from "../format/chunk/constants.ts";

export interface Env {
  readonly MLA_EDGE_VERSION?: string;
}

const app = new Hono<{ Bindings: Env }>();

app.get("/v1/health", (c) => c.json({ ok: true, formatVersion: FORMAT_VERSION }));

export default app satisfies ExportedHandler<Env>;
