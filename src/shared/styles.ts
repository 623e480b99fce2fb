/** Widget CSS (static text), injected once per document; colours come from `--jp-*`. */
const CSS = `
.lw-root { position: relative; font-family: var(--jp-ui-font-family, system-ui, sans-serif); font-size: 12px;
  color: var(--jp-ui-font-color1, #212121); background: var(--jp-layout-color0, #fff); padding: 6px; box-sizing: border-box; }
.lw-root[data-theme="dark"] { color: var(--jp-ui-font-color1, #e0e0e0); background: var(--jp-layout-color0, #111); }
.lw-header { display: flex; align-items: center; gap: 8px; min-height: 22px; }
.lw-title { font-weight: 600; font-size: 13px; flex: 1; }
.lw-toolbar { display: flex; gap: 4px; }
.lw-button { font: inherit; color: inherit; background: var(--jp-layout-color2, #eee); border: 1px solid var(--jp-border-color1, #bdbdbd);
  border-radius: 3px; padding: 1px 6px; cursor: pointer; }
.lw-root[data-theme="dark"] .lw-button { background: var(--jp-layout-color2, #333); border-color: var(--jp-border-color1, #555); }
.lw-error { display: flex; justify-content: space-between; gap: 8px; margin: 4px 0; padding: 4px 8px; border-radius: 3px;
  color: var(--jp-error-color0, #b71c1c); background: var(--jp-error-color3, #ffebee); border: 1px solid var(--jp-error-color1, #d32f2f); white-space: pre-wrap; }
.lw-root[data-theme="dark"] .lw-error { color: var(--jp-error-color3, #ffcdd2); background: var(--jp-error-color0, #4a1212); }
.lw-root [hidden] { display: none !important; }
.lw-status { margin: 4px 0; padding: 3px 8px; border-radius: 3px; border: 1px solid var(--jp-border-color1, #bdbdbd);
  background: var(--jp-layout-color2, #eee); color: var(--jp-ui-font-color1, #212121); }
.lw-status[data-link="unresponsive"] { border-color: var(--jp-warn-color1, #f57c00); color: var(--jp-warn-color0, #e65100); }
.lw-root[data-link="saved"] .lw-body, .lw-root[data-link="disconnected"] .lw-body { opacity: 0.9; }
.lw-tooltip { position: absolute; z-index: 10; pointer-events: none; padding: 3px 6px; border-radius: 3px; white-space: pre;
  font-family: var(--jp-code-font-family, monospace); background: var(--jp-layout-color1, #fff); color: var(--jp-ui-font-color0, #000);
  border: 1px solid var(--jp-border-color1, #bdbdbd); box-shadow: 0 1px 4px rgba(0,0,0,.25); }
.lw-body { display: flex; gap: 12px; align-items: flex-start; flex-wrap: wrap; margin-top: 4px; }
.lw-legend { display: flex; gap: 4px; align-items: stretch; }
.lw-legend-ramp { width: 12px; border: 1px solid var(--jp-border-color1, #bdbdbd); }
.lw-legend-labels { display: flex; flex-direction: column; justify-content: space-between; }
.lw-grid { display: grid; grid-template-columns: auto auto; grid-template-rows: auto auto; }
.lw-col-labels, .lw-src-labels { display: flex; grid-column: 2; align-items: flex-end; overflow: hidden; }
.lw-row-labels, .lw-dest-labels { display: flex; flex-direction: column; grid-column: 1; grid-row: 2; overflow: hidden; align-items: flex-end; }
.lw-canvas { grid-column: 2; grid-row: 2; cursor: crosshair; display: block; image-rendering: pixelated; }
.lw-canvas:focus { outline: none; }
.lw-canvas:focus-visible { outline: 2px solid var(--jp-brand-color1, #1976d2); outline-offset: 2px; }
.lw-col-label, .lw-src-label { writing-mode: vertical-rl; transform: rotate(180deg); white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; max-height: 90px; text-align: left; line-height: 1; }
.lw-row-label, .lw-dest-label { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; max-width: 110px; padding-right: 4px; }
.lw-src-label, .lw-dest-label, .lw-token { font-family: var(--jp-code-font-family, monospace); cursor: default; }
.lw-src-label.lw-hl, .lw-dest-label.lw-hl { color: var(--jp-brand-color1, #1976d2); font-weight: 700; }
.lw-token-strip { display: flex; flex-wrap: wrap; gap: 2px; max-width: 760px; margin: 4px 0; }
.lw-token { padding: 0 2px; border-radius: 2px; border: 1px solid var(--jp-border-color2, #e0e0e0); white-space: pre; }
.lw-token.lw-hl { outline: 2px solid var(--jp-brand-color1, #1976d2); }
.lw-controls { display: flex; flex-direction: column; gap: 6px; width: 100%; }
.lw-controls-row { display: flex; gap: 8px; align-items: center; }
.lw-prompt { font-family: var(--jp-code-font-family, monospace); font-size: 12px; width: 100%; max-width: 760px; min-height: 38px;
  color: inherit; background: var(--jp-layout-color1, #fff); border: 1px solid var(--jp-border-color1, #bdbdbd); box-sizing: border-box; }
.lw-root[data-busy="true"] .lw-prompt { border-color: var(--jp-warn-color1, #f57c00); }
`;

const STYLE_ID = "lenswidget-styles";

/** Add a `<style id={id}>` holding `css` to `doc`'s head, unless one with that id is there already. */
export function injectStyleOnce(id: string, css: string, doc: Document = document): void {
  if (doc.getElementById(id)) return;
  const style = doc.createElement("style");
  style.id = id;
  style.textContent = css;
  doc.head.append(style);
}

export function injectStyles(doc: Document = document): void {
  injectStyleOnce(STYLE_ID, CSS, doc);
}
