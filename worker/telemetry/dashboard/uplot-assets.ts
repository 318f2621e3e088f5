// uPlot 1.6.32's browser build and stylesheet, bundled into the Worker as text modules (wrangler `rules` type Text for
// these two files; see docs/telemetry.md "Wiring") and served from /dashboard/assets/: the dashboard needs no CDN.
import uplotScript from "uplot/dist/uPlot.iife.min.js";
import uplotStyles from "uplot/dist/uPlot.min.css";

export const UPLOT_SCRIPT: string = uplotScript;
export const UPLOT_STYLES: string = uplotStyles;
