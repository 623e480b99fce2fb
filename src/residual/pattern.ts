/**
 * The open head's attention pattern in the residual explorer's detail: a still picture
 * (dest rows x src columns) on the shared grid canvas, with the attributed position's row
 * outlined and token labels when the cells are big enough to read. The attention
 * inspector's zoomable view (shared/patternView.ts) is for exploring patterns; this one
 * only has to show one, and keeps the residual bundle small.
 *
 * DOM contract (docs/residual.md): `lw-attn-canvas` with the grid geometry attributes plus
 * `data-layer`, `data-head`, `data-mode="locked"`, `data-resolution="full"` and
 * `data-highlight`; `lw-head-label` (`L{l}H{h} (locked)`); `lw-dest-label` / `lw-src-label`.
 */
import type { ColorScale } from "../shared/colors";
import { el } from "../shared/dom";
import { GridCanvas, type Overlay } from "../shared/grid";
import { visibleToken } from "../shared/tokens";

/** Largest side of the picture, CSS px. */
const SIDE = 420;
/** Cells narrower than this (CSS px) get no token labels. */
const LABEL_MIN = 9;

export interface HeadPatternData {
  layer: number;
  head: number;
  name: string;
  tokens: string[];
  /** Row-major `n x n` values. */
  values: ArrayLike<number>;
}

export class HeadPattern {
  readonly node: HTMLDivElement;
  readonly grid: GridCanvas;
  private readonly label: HTMLDivElement;
  private readonly rows: HTMLDivElement;
  private readonly cols: HTMLDivElement;
  highlight: number | null = null;

  constructor(private readonly colors: () => { accent: string; dim: string }) {
    const canvas = el("canvas", { testid: "lw-attn-canvas", className: "lw-canvas", attrs: { "aria-label": "Attention pattern of the open head" } });
    this.grid = new GridCanvas(canvas);
    this.label = el("div", { testid: "lw-head-label", className: "lw-head-label" });
    this.rows = el("div", { className: "lw-dest-labels" });
    this.cols = el("div", { className: "lw-src-labels" });
    this.node = el("div", { className: "lw-main", children: [this.label, el("div", { className: "lw-grid", children: [el("div"), this.cols, this.rows, canvas] })] });
  }

  show(d: HeadPatternData | null, scale: ColorScale): void {
    const n = d ? d.tokens.length : 0;
    const cell = n ? Math.max(1, Math.min(24, Math.floor(SIDE / n))) : 1;
    const ds = this.grid.canvas.dataset;
    ds.layer = d ? String(d.layer) : "";
    ds.head = d ? String(d.head) : "";
    ds.mode = "locked";
    ds.resolution = "full";
    this.label.textContent = d ? `${d.name} (locked)` : "";
    this.grid.setGeometry({ rows: n, cols: n, cellW: cell, cellH: cell });
    this.grid.setValues(d ? d.values : [], scale);
    const labels = (testid: string, size: "height" | "width") =>
      cell < LABEL_MIN || !d
        ? []
        : d.tokens.map((tok, i) =>
            el("div", { testid, className: testid, text: visibleToken(tok), attrs: { "data-index": String(i), title: `${i}: ${JSON.stringify(tok)}`, style: `${size}:${cell}px;line-height:${cell}px` } }),
          );
    this.rows.replaceChildren(...labels("lw-dest-label", "height"));
    this.cols.replaceChildren(...labels("lw-src-label", "width"));
    this.setHighlight(this.highlight !== null && this.highlight < n ? this.highlight : null);
  }

  /** Outline row `i` (attention from position i) and dim the other rows. */
  setHighlight(i: number | null): void {
    this.highlight = i;
    this.grid.canvas.dataset.highlight = i === null ? "" : String(i);
    for (const group of [this.rows, this.cols]) for (const c of group.children) c.classList.toggle("lw-hl", (c as HTMLElement).dataset.index === String(i));
    const overlays: Overlay[] = [];
    if (i !== null) {
      const { accent, dim } = this.colors();
      overlays.push((ctx, g) => {
        ctx.fillStyle = dim;
        ctx.fillRect(0, 0, g.cols * g.cellW, i * g.cellH);
        ctx.fillRect(0, (i + 1) * g.cellH, g.cols * g.cellW, (g.rows - i - 1) * g.cellH);
        ctx.strokeStyle = accent;
        ctx.lineWidth = 2;
        ctx.strokeRect(1, i * g.cellH + 1, g.cols * g.cellW - 2, g.cellH - 2);
      });
    }
    this.grid.paint(overlays);
  }
}
