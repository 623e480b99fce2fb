/** CSS of the attention inspector (atlas, options, layout), injected once per document. */
import { injectStyleOnce } from "../shared/styles";

// One rule per line, no padding: these strings ship verbatim in the bundle.
const CSS = `
.lw-root[data-widget="attention"] .lw-body{flex-direction:column;flex-wrap:nowrap}
.lw-attn-main{display:flex;gap:12px;align-items:flex-start}
.lw-opt{display:inline-flex;align-items:center;gap:3px;cursor:pointer}
.lw-note{color:var(--jp-ui-font-color2,#616161);font-style:italic;max-width:760px}
.lw-note[hidden]{display:none}
.lw-thumb-grid{max-height:420px;max-width:100%;overflow:auto;border:1px solid var(--jp-border-color2,#e0e0e0);padding:2px;box-sizing:border-box}
.lw-atlas{position:relative}
.lw-atlas:focus{outline:none}
.lw-atlas:focus-visible{outline:2px solid var(--jp-brand-color1,#1976d2);outline-offset:1px}
.lw-atlas-canvas{position:absolute;top:0;image-rendering:pixelated}
.lw-thumb-row{position:absolute;left:0;box-sizing:border-box}
.lw-thumb-row[data-selected="true"]{box-shadow:inset 0 0 0 1px var(--jp-brand-color1,#1976d2)}
.lw-thumb-row-label{position:absolute;left:0;top:0;text-align:right;font-family:var(--jp-code-font-family,monospace)}
.lw-thumb-row[data-selected="true"] .lw-thumb-row-label{color:var(--jp-brand-color1,#1976d2);font-weight:700}
.lw-thumb{position:absolute;top:0;box-sizing:border-box;cursor:pointer;border-radius:2px}
.lw-thumb:hover{box-shadow:inset 0 0 0 1px var(--jp-ui-font-color2,#757575)}
.lw-thumb[data-preview="true"]{box-shadow:inset 0 0 0 2px var(--jp-warn-color1,#f57c00)}
.lw-thumb[data-locked="true"]{box-shadow:inset 0 0 0 2px var(--jp-brand-color1,#1976d2)}
.lw-thumb[data-active="true"]{outline:1px dashed var(--jp-ui-font-color1,#424242);outline-offset:-1px}
.lw-root[data-widget="attention"] .lw-token-strip{max-height:140px;overflow-y:auto;width:100%}
.lw-token-strip:focus-visible{outline:2px solid var(--jp-brand-color1,#1976d2)}
.lw-token[aria-selected="true"]{outline:2px dashed var(--jp-brand-color1,#1976d2)}
.lw-token-strip .lw-token{cursor:pointer}
`;

export function injectAttentionStyles(doc: Document = document): void {
  injectStyleOnce("lenswidget-attention-styles", CSS, doc);
}
