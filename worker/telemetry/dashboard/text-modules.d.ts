// Files bundled as text modules by the `Text` rule in wrangler.jsonc (tests/telemetry-worker/wrangler.jsonc, and the
// main config once wired): their default export is the file's contents.
declare module "uplot/dist/uPlot.iife.min.js" {
  const text: string;
  export default text;
}
declare module "uplot/dist/uPlot.min.css" {
  const text: string;
  export default text;
}
