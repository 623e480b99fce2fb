/** CSS of the pattern view (viewport, overlay, virtualised labels, zoom bar), injected once. */
import { injectStyleOnce } from "./styles";

// One rule per line, no padding: these strings ship verbatim in every bundle.
const CSS = `
.lw-main{display:flex;flex-direction:column}
.lw-pv-head{display:flex;align-items:center;gap:8px;margin-bottom:4px}
.lw-head-label{font-family:var(--jp-code-font-family,monospace)}
.lw-zoombar{display:flex;align-items:center;gap:3px}
.lw-zoom-level{font-family:var(--jp-code-font-family,monospace);min-width:3em}
.lw-pv{display:grid;grid-template-columns:auto auto}
.lw-pv-src{position:relative;grid-column:2;grid-row:1;height:90px;overflow:hidden}
.lw-pv-dest{position:relative;grid-column:1;grid-row:2;width:110px;overflow:hidden}
.lw-pv-src>.lw-src-label{position:absolute;bottom:0}
.lw-pv-dest>.lw-dest-label{position:absolute;right:0;text-align:right;box-sizing:border-box}
.lw-pv-stage{position:relative;grid-column:2;grid-row:2}
.lw-pv-canvas{display:block;cursor:crosshair;image-rendering:pixelated}
.lw-pv-canvas:focus{outline:none}
.lw-pv-canvas:focus-visible{outline:2px solid var(--jp-brand-color1,#1976d2);outline-offset:1px}
.lw-pv-canvas[data-dragging="true"]{cursor:grabbing}
.lw-pv-overlay{position:absolute;left:0;top:0;pointer-events:none}
`;

export function injectPatternStyles(doc: Document = document): void {
  injectStyleOnce("lenswidget-pattern-styles", CSS, doc);
}
