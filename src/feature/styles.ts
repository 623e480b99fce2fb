/** CSS of the feature dashboard (static text, injected once); colours from `--jp-*`. */
import { injectActivationStyles } from "../shared/activations";
import { injectStyleOnce } from "../shared/styles";

const CSS = `
.lw-feat { display: flex; flex-direction: column; gap: 8px; width: 100%; max-width: 980px; }
.lw-feat-head { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; }
.lw-feat-idx { width: 80px; font: inherit; color: inherit; background: var(--jp-layout-color1, #fff); border: 1px solid var(--jp-border-color1, #bdbdbd); }
.lw-feat-muted, .lw-feat-caption { color: var(--jp-ui-font-color2, #616161); }
.lw-feat-progress { display: flex; gap: 8px; align-items: center; }
.lw-feat-progress[hidden], .lw-feat-results[hidden] { display: none; }
.lw-feat-progress progress { width: 260px; }
.lw-feat-results { display: flex; flex-direction: column; gap: 8px; }
.lw-feat-top { display: flex; gap: 24px; flex-wrap: wrap; align-items: flex-start; }
.lw-feat-hist-bars { display: flex; align-items: flex-end; gap: 1px; min-width: 120px; border-bottom: 1px solid var(--jp-border-color1, #bdbdbd); }
.lw-feat-hist-bar { width: 7px; }
.lw-feat-hist-axis { display: flex; justify-content: space-between; font-family: var(--jp-code-font-family, monospace); }
.lw-feat-effects { display: flex; gap: 24px; }
.lw-feat-contexts { margin: 0; padding-left: 26px; display: flex; flex-direction: column; gap: 2px; }
.lw-feat-context { display: flex; gap: 8px; align-items: center; }
.lw-feat-context .lw-token-strip { margin: 0; gap: 1px; }
.lw-feat-context-value { font-family: var(--jp-code-font-family, monospace); min-width: 56px; text-align: right; }
`;

export function injectFeatureStyles(doc: Document = document): void {
  injectActivationStyles(doc);
  injectStyleOnce("lenswidget-feature-styles", CSS, doc);
}
