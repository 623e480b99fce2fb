/** Patcher CSS (static text), injected once per document next to the shared styles. */
import { injectStyleOnce } from "../shared/styles";

const CSS = `
.lw-root[data-widget="patcher"] { max-width: 100%; }
.lw-patch-layout { display: flex; flex-direction: column; gap: 8px; width: 100%; }
.lw-patch-grids { display: flex; gap: 16px; align-items: flex-start; flex-wrap: wrap; }
.lw-patch-panel { display: flex; flex-direction: column; gap: 2px; }
.lw-patch-panel-title { font-weight: 600; }
.lw-patch-canvas { touch-action: none; user-select: none; cursor: grab; }
.lw-root[data-drag="dragging"] .lw-patch-canvas, .lw-root[data-drag="dragging"] { cursor: grabbing; }
.lw-patch-canvas:focus-visible { outline: 2px solid var(--jp-brand-color1, #1976d2); outline-offset: 1px; }
.lw-patch-side { display: flex; flex-direction: column; gap: 6px; min-width: 150px; }
.lw-ablate-target { border: 2px dashed var(--jp-border-color1, #bdbdbd); border-radius: 4px; padding: 10px 8px; text-align: center;
  display: flex; flex-direction: column; gap: 4px; align-items: center; }
.lw-ablate-target[data-over="true"] { border-color: var(--jp-error-color1, #d32f2f); background: rgba(211, 47, 47, 0.08); }
.lw-muted { color: var(--jp-ui-font-color2, #757575); }
.lw-inline { display: inline-flex; gap: 4px; align-items: center; }
.lw-token-rows { display: grid; grid-template-columns: auto 1fr; gap: 2px 6px; align-items: center; }
.lw-token-row { display: flex; flex-wrap: nowrap; gap: 2px; overflow-x: auto; }
.lw-token-row .lw-token[data-differs="true"] { background: rgba(245, 124, 0, 0.22); }
.lw-token-row .lw-token[data-selected="true"] { outline: 2px solid var(--jp-brand-color1, #1976d2); }
.lw-token-row[data-clickable="true"] .lw-token { cursor: pointer; }
.lw-token-row-label { font-weight: 600; text-align: right; }
.lw-patch-prompts { display: flex; gap: 8px; align-items: flex-end; flex-wrap: wrap; }
.lw-prompt-label { display: flex; flex-direction: column; flex: 1; min-width: 200px; }
.lw-metric-panel { display: flex; gap: 16px; flex-wrap: wrap; align-items: flex-start; }
.lw-metric { min-width: 180px; }
.lw-metric-value { font-size: 22px; font-weight: 700; font-family: var(--jp-code-font-family, monospace); }
.lw-metric[data-pending="true"] .lw-metric-value { opacity: 0.5; }
.lw-metric-bar { height: 8px; background: var(--jp-layout-color2, #eee); border-radius: 4px; overflow: hidden; width: 180px; }
.lw-metric-fill { height: 100%; background: var(--jp-brand-color1, #1976d2); }
.lw-top-tokens { display: flex; gap: 16px; }
.lw-top-title { font-weight: 600; }
.lw-top-list { margin: 0; padding-left: 18px; font-family: var(--jp-code-font-family, monospace); }
.lw-chips { display: flex; gap: 6px; align-items: center; flex-wrap: wrap; }
.lw-chip-list { display: flex; gap: 4px; flex-wrap: wrap; }
.lw-chip { display: inline-flex; gap: 4px; align-items: center; padding: 1px 4px; border-radius: 10px;
  border: 1px solid var(--jp-brand-color1, #1976d2); background: rgba(25, 118, 210, 0.10); }
.lw-chip[data-mode="zero"], .lw-chip[data-mode="mean"] { border-color: var(--jp-error-color1, #d32f2f); background: rgba(211, 47, 47, 0.08); }
.lw-chip[data-enabled="false"] { opacity: 0.55; border-style: dashed; }
.lw-chip:focus-visible { outline: 2px solid var(--jp-brand-color1, #1976d2); }
.lw-chip-remove { border: none; background: none; color: inherit; cursor: pointer; font: inherit; padding: 0 2px; }
.lw-code { max-height: 240px; overflow: auto; font-family: var(--jp-code-font-family, monospace); font-size: 11px; white-space: pre;
  background: var(--jp-layout-color1, #fafafa); border: 1px solid var(--jp-border-color2, #e0e0e0); padding: 4px; margin: 4px 0 0; }
.lw-drag-ghost { position: absolute; z-index: 20; pointer-events: none; padding: 2px 6px; border-radius: 3px; font-size: 11px;
  background: var(--jp-brand-color1, #1976d2); color: #fff; white-space: nowrap; }
.lw-notice { color: var(--jp-warn-color0, #e65100); }
`;

const STYLE_ID = "lenswidget-patcher-styles";

export function injectPatcherStyles(doc: Document = document): void {
  injectStyleOnce(STYLE_ID, CSS, doc);
}
