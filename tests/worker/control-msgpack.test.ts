// The MessagePack control codec inside workerd (the Worker's runtime): msgpackr bundles and runs there, and decodes
// what Node encoded byte for byte (the Worker will encode restore headers, Node and browsers decode them).
import { describe, expect, it } from "vitest";
import { decodeRestoreHeaderMsgpack, encodeRestoreHeaderMsgpack, ControlDecodeError } from "../../format/wire/control-msgpack.ts";
import { restoreHeader } from "../bench/wire-header.ts";

describe("MessagePack restore header in workerd", () => {
  it("should round-trip a 2,048-entry header and refuse trailing bytes", () => {
    const h = restoreHeader(2048);
    const packed = encodeRestoreHeaderMsgpack(h);
    expect(packed.length).toBe(103_936); // the size Node's encoder gives (tests/format/control-msgpack.test.ts, bench wire.*)
    expect(decodeRestoreHeaderMsgpack(packed)).toEqual(h);
    expect(() => decodeRestoreHeaderMsgpack(new Uint8Array([...packed, 0]))).toThrow(ControlDecodeError);
  });
});
