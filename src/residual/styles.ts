/** CSS of the residual explorer (static text, injected once); colours from `--jp-*`. */
import { injectStyleOnce } from "../shared/styles";

const CSS = `
.lw-res-controls { max-width: 900px; }
.lw-res-wrap { flex-wrap: wrap; }
.lw-res-field { display: inline-flex; gap: 4px; align-items: center; }
.lw-res-token-input { font-family: var(--jp-code-font-family, monospace); width: 120px; color: inherit;
  background: var(--jp-layout-color1, #fff); border: 1px solid var(--jp-border-color1, #bdbdbd); }
.lw-res-current { font-family: var(--jp-code-font-family, monospace); color: var(--jp-ui-font-color2, #616161); }
.lw-res-prompts { flex: 1; }
.lw-res-tabs { display: flex; gap: 4px; }
.lw-res-tab[aria-selected="true"] { border-color: var(--jp-brand-color1, #1976d2); font-weight: 600; }
.lw-res-crumbs { display: flex; gap: 4px; align-items: center; flex-wrap: wrap; width: 100%; }
.lw-res-crumb[data-current="true"] { font-weight: 600; cursor: default; }
.lw-res-crumb-sep { color: var(--jp-ui-font-color2, #616161); }
.lw-res-check { width: 100%; font-family: var(--jp-code-font-family, monospace); color: var(--jp-ui-font-color2, #616161); }
.lw-res-check[data-ok="false"] { color: var(--jp-warn-color1, #f57c00); }
.lw-res-main { display: flex; gap: 16px; align-items: flex-start; flex-wrap: wrap; width: 100%; }
.lw-res-bars { display: flex; flex-direction: column; min-width: 420px; max-height: 520px; overflow-y: auto; flex: none; }
.lw-res-bar { display: grid; grid-template-columns: 130px 260px 70px; align-items: center; gap: 6px; height: 18px; padding: 0 2px;
  border: 1px solid transparent; border-radius: 2px; }
.lw-res-bar[data-openable="true"] { cursor: pointer; }
.lw-res-bar[data-openable="true"]:hover, .lw-res-bar:focus { background: rgba(127, 127, 127, 0.15); outline: none; }
.lw-res-bar[data-selected="true"] { border-color: var(--jp-brand-color1, #1976d2); }
.lw-res-bar-label { font-family: var(--jp-code-font-family, monospace); white-space: nowrap; overflow: hidden; text-overflow: ellipsis; text-align: right; }
.lw-res-bar-track { position: relative; height: 12px; }
.lw-res-bar-zero { position: absolute; left: 50%; top: -2px; bottom: -2px; width: 1px; background: var(--jp-border-color1, #bdbdbd); }
.lw-res-bar-fill { position: absolute; top: 0; bottom: 0; }
.lw-res-bar-value { font-family: var(--jp-code-font-family, monospace); }
.lw-res-detail { display: flex; flex-direction: column; gap: 6px; max-width: 760px; }
.lw-res-detail-title { font-family: var(--jp-code-font-family, monospace); font-weight: 600; }
.lw-res-caption { color: var(--jp-ui-font-color2, #616161); margin: 2px 0; }
.lw-res-effects { display: flex; gap: 24px; }
.lw-res-top { margin: 0; padding-left: 22px; font-family: var(--jp-code-font-family, monospace); }
.lw-res-top-token { display: flex; gap: 8px; justify-content: space-between; min-width: 150px; }
.lw-res-heads { display: flex; gap: 8px; align-items: flex-start; }
.lw-res-lens { display: flex; gap: 16px; align-items: flex-start; flex-wrap: wrap; width: 100%; min-width: 0; }
.lw-res-scroll { max-height: 460px; max-width: 100%; overflow: auto; }
.lw-res-lens-curve { flex: none; }
.lw-res-lens-gridbox { flex: 1 1 420px; min-width: 0; max-width: 100%; }
.lw-res-lens-scroll { max-height: 480px; max-width: 100%; overflow: scroll; overscroll-behavior: contain;
  border: 1px solid var(--jp-border-color2, #e0e0e0); scrollbar-width: auto; scrollbar-color: var(--jp-ui-font-color3, #9e9e9e) transparent; }
.lw-res-lens-grid { width: max-content; }
.lw-res-lens-corner { position: sticky; left: 0; top: 0; z-index: 3; background: var(--jp-layout-color0, #fff); }
.lw-res-lens-cols { position: sticky; top: 0; z-index: 2; background: var(--jp-layout-color0, #fff); }
.lw-res-lens-rows { position: sticky; left: 0; z-index: 2; background: var(--jp-layout-color0, #fff);
  border-right: 1px solid var(--jp-border-color2, #e0e0e0); }
.lw-res-lens-table { border-collapse: collapse; font-family: var(--jp-code-font-family, monospace); }
.lw-res-lens-table th, .lw-res-lens-table td { padding: 0 6px; text-align: right; white-space: nowrap; }
.lw-res-prob-bar { display: inline-block; height: 8px; background: var(--jp-brand-color1, #1976d2); vertical-align: middle; }
`;

const STYLE_ID = "lenswidget-residual-styles";

export function injectResidualStyles(doc: Document = document): void {
  injectStyleOnce(STYLE_ID, CSS, doc);
}
