// The edge Worker records its own store events into telemetry: /metrics on the main Worker counts sessions and forks.
import { describe, expect, it } from "vitest";
import { flushTelemetry } from "../../worker/telemetry/index.ts";
import { Conversation } from "./helpers/conversation.ts";
import { append, call, createSession, OPERATOR_KEY, testEnv, TINY_C, TINY_CODEC, TINY_SPEC } from "./helpers/store.ts";

async function counter(name: string): Promise<number> {
  await flushTelemetry(testEnv);
  const res = await call("/metrics", { headers: { authorization: `Bearer ${OPERATOR_KEY}` } });
  expect(res.status).toBe(200);
  const line = (await res.text()).split("\n").find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1));
}

describe("store telemetry", () => {
  it("should count created sessions and forks on /metrics", async () => {
    const created0 = await counter("mla_edge_sessions_created_total");
    const forks0 = await counter("mla_edge_forks_total");
    const s = await createSession("alpha");
    const conv = new Conversation(TINY_SPEC, TINY_CODEC, TINY_C);
    const turn = conv.build(5);
    expect((await append(s, turn.frames)).status).toBe(201);
    conv.accept(turn);
    const fork = await call(`/v1/sessions/${s.id}/fork`, {
      method: "POST",
      headers: { ...s.auth, "content-type": "application/json" },
      body: JSON.stringify({ atSeq: 1 }),
    });
    expect(fork.status).toBe(201);
    expect(await counter("mla_edge_sessions_created_total")).toBe(created0 + 1);
    expect(await counter("mla_edge_forks_total")).toBe(forks0 + 1);
  });
});
