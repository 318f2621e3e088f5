// mulberry32: the seeded uniform generator the test suites share (codec, conversion, model, kernel and e2e data), so
// a seed means the same numbers everywhere, in Node, workerd and the browser. It is the runtime sampler's generator
// (runtime/sampler.ts), so a test seed and a sampling seed mean the same stream.
export { mulberry32 } from "../../runtime/sampler.ts";
