// StopScanner over a subword-style vocabulary (pieces joined without spaces, as BPE decodes): the stop string may span
// tokens or start inside one; streamed deltas never show text that turns out to be the start of a stop string.
import { describe, expect, it } from "vitest";
import { StopScanner } from "../../runtime/stop-sequences.ts";

const PIECES = ["hel", "lo", " w", "orld", "!", " wo", "rm"];
const decode = (ids: readonly number[]) => ids.map((i) => PIECES[i]).join("");

function run(ids: number[], stops: string[]): { deltas: string[]; stoppedAt: number | null; text: string } {
  const s = new StopScanner(stops, decode);
  const deltas: string[] = [];
  for (let n = 1; n <= ids.length; n++) {
    const r = s.push(ids.slice(0, n));
    deltas.push(r.delta);
    if (r.stopped) return { deltas, stoppedAt: n, text: s.text };
  }
  deltas.push(s.finish(ids));
  return { deltas, stoppedAt: null, text: s.text };
}

describe("StopScanner", () => {
  it("should stop at a string spanning tokens, holding back its possible start", () => {
    // "hello world!" with stop "lo wor": the "l" of "hel" could start it (held), "lo w" too (held), "orld" completes it
    const r = run([0, 1, 2, 3, 4], ["lo wor"]);
    expect(r).toEqual({ deltas: ["he", "l", "", ""], stoppedAt: 4, text: "hel" });
  });

  it("should release held text when the stop does not follow, and stop inside a token", () => {
    // "hello worm": "wo" is held for "world", then released when "rm" rules it out
    const r = run([0, 1, 5, 6], ["world"]);
    expect(r.stoppedAt).toBeNull();
    expect(r.deltas).toEqual(["hel", "lo", " ", "worm", ""]);
    const inner = run([0, 1, 2, 3], ["ll"]);
    expect(inner).toEqual({ deltas: ["he", ""], stoppedAt: 2, text: "he" }); // "l" held after "hel", "ll" completed by "lo"
  });

  it("should take the earliest of several stops and pass everything through without stops", () => {
    expect(run([0, 1, 2, 3, 4], ["!", "o w"]).text).toBe("hell");
    const none = run([0, 1, 2, 3, 4], []);
    expect(none.deltas).toEqual(["hel", "lo", " w", "orld", "!", ""]);
  });
});
