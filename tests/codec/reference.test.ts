// The behavioural suite against the plain-TypeScript reference codec.
import { referenceCodec } from "../../format/codec/reference.ts";
import { describeCodecSuite } from "./codec-suite.ts";

describeCodecSuite("reference", () => referenceCodec);
