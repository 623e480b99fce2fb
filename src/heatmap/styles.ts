/** Head heatmap CSS (static text, injected once); colours from `--jp-*`. */
import { injectStyleOnce } from "../shared/styles";

const CSS = `
.lw-heatmap-body { flex-wrap: nowrap; }
.lw-legend-box { display: flex; flex-direction: column; gap: 4px; flex: none; }
.lw-legend-title { font-weight: 600; max-width: 110px; overflow-wrap: anywhere; }
.lw-legend-wrap { position: relative; }
.lw-legend-marker { position: absolute; left: -4px; width: 22px; height: 0; border-top: 2px solid var(--jp-ui-font-color0, #000);
  pointer-events: none; }
.lw-legend-value { position: absolute; left: 26px; top: -8px; padding: 0 3px; white-space: nowrap; font-family: var(--jp-code-font-family, monospace);
  background: var(--jp-layout-color0, #fff); border: 1px solid var(--jp-border-color1, #bdbdbd); border-radius: 2px; }
`;

export function injectHeatmapStyles(doc: Document = document): void {
  injectStyleOnce("lenswidget-heatmap-styles", CSS, doc);
}
