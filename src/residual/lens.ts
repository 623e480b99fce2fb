/**
 * Logit lens: a table of the answer's rank, probability and logit (or logit difference)
 * through every layer and mid-layer, and a positions x layers grid of the top predicted
 * token (drawn as canvas text, never HTML), coloured by its probability. Hovering a cell
 * lists its top-k tokens in the tooltip.
 */
import type { ColorScale } from "../shared/colors";
import { textOn } from "../shared/colors";
import { el } from "../shared/dom";
import { formatValue } from "../shared/format";
import { GridA11y } from "../shared/a11y";
import { GridCanvas, outlineCell, type Cell, type Overlay } from "../shared/grid";
import { visibleToken } from "../shared/tokens";
import type { LensData, LensGridData } from "./state";

export const LENS_CELL_W = 46;
export const LENS_CELL_H = 18;

export class LensView {
  readonly node: HTMLDivElement;
  readonly table: HTMLTableElement;
  readonly grid: GridCanvas;
  private readonly rowLabels: HTMLDivElement;
  private readonly colLabels: HTMLDivElement;
  private readonly caption: HTMLDivElement;
  data: LensGridData | null = null;
  hover: Cell | null = null;
  private scale: ColorScale | null = null;

  /**
   * The grid scrolls inside its own box (both ways, scrollbars shown), with the position
   * labels stuck to the left and the layer labels stuck to the top; it opens scrolled to
   * the end, where the late layers and `final_post` are.
   */
  readonly scroller: HTMLDivElement;
  readonly a11y: GridA11y;
  private scrollPending = true;

  constructor(private readonly colors: () => { fg: string; font: string }) {
    this.table = el("table", { testid: "lw-res-lens-table", className: "lw-res-lens-table" });
    const canvas = el("canvas", { testid: "lw-res-lens-canvas", className: "lw-canvas" });
    this.grid = new GridCanvas(canvas);
    this.a11y = new GridA11y(canvas, "Logit lens: top prediction per position (rows) and layer (columns); arrow keys move");
    this.rowLabels = el("div", { className: "lw-dest-labels lw-res-lens-rows" });
    this.colLabels = el("div", { className: "lw-col-labels lw-res-lens-cols" });
    this.caption = el("div", { testid: "lw-res-lens-caption", className: "lw-res-caption" });
    this.scroller = el("div", {
      testid: "lw-res-lens-scroll",
      className: "lw-res-lens-scroll",
      children: [el("div", { className: "lw-grid lw-res-lens-grid", children: [el("div", { className: "lw-res-lens-corner" }), this.colLabels, this.rowLabels, canvas] })],
    });
    this.node = el("div", {
      testid: "lw-res-lens",
      className: "lw-res-lens",
      children: [
        el("div", { className: "lw-res-scroll lw-res-lens-curve", children: [this.table] }),
        el("div", { className: "lw-res-lens-gridbox", children: [this.caption, this.scroller] }),
      ],
    });
  }

  /** Scroll to the last layers once the grid is on screen (after new data or opening the tab). */
  revealLatest(): void {
    if (!this.scrollPending || this.node.hidden || !this.scroller.scrollWidth) return;
    this.scrollPending = false;
    this.scroller.scrollLeft = this.scroller.scrollWidth;
  }

  renderCurve(lens: LensData | null, answerText: string): void {
    if (!lens) {
      this.table.replaceChildren();
      return;
    }
    const diff = lens.diff !== null;
    const head = el("tr", {
      children: ["layer", "rank", `p(${answerText})`, diff ? "logit diff" : "logit"].map((t) => el("th", { text: t })),
    });
    const rows = lens.labels.map((label, i) => {
      const rank = lens.rank[i] ?? NaN;
      const prob = lens.prob[i] ?? NaN;
      const logit = lens.logit[i] ?? NaN;
      const shown = diff ? lens.diff![i] ?? NaN : logit;
      const bar = el("span", { className: "lw-res-prob-bar" });
      bar.style.width = `${Math.round(Math.max(0, Math.min(1, prob)) * 60)}px`;
      return el("tr", {
        testid: "lw-res-lens-row",
        attrs: {
          "data-label": label,
          "data-rank": String(rank),
          "data-prob": String(prob),
          "data-logit": String(logit),
          ...(diff ? { "data-diff": String(shown) } : {}),
        },
        children: [
          el("td", { text: label }),
          el("td", { text: Number.isInteger(rank) ? String(rank) : rank.toFixed(1) }),
          el("td", { children: [bar, el("span", { text: ` ${formatValue(prob)}` })] }),
          el("td", { text: formatValue(shown) }),
        ],
      });
    });
    this.table.replaceChildren(el("thead", { children: [head] }), el("tbody", { children: rows }));
  }

  renderGrid(grid: LensGridData | null, scale: ColorScale): void {
    if (grid) this.scrollPending = true;
    this.data = grid;
    this.scale = scale;
    const n = grid?.ids.shape[0] ?? 0;
    const layers = grid?.ids.shape[1] ?? 0;
    this.caption.textContent = grid ? `Top prediction at each position (rows) after each layer (columns), prompt ${grid.prompt}` : "";
    this.grid.setGeometry({ rows: n, cols: layers, cellW: LENS_CELL_W, cellH: LENS_CELL_H });
    this.grid.setValues(grid ? this.topProbs(grid) : new Float32Array(0), scale);
    this.a11y.setCells(n, layers, (r, c) => {
      const best = this.top({ row: r, col: c })[0];
      return best ? `${grid!.labels[c] ?? c}, ${visibleToken(grid!.tokens[r] ?? "")}[${r}]: ${JSON.stringify(best.token)} ${formatValue(best.prob)}` : "";
    });
    this.rowLabels.replaceChildren(
      ...(grid?.tokens ?? []).slice(0, n).map((tok, i) =>
        el("div", { testid: "lw-res-lens-pos", className: "lw-dest-label", text: visibleToken(tok), attrs: { "data-index": String(i), title: `${i}: ${JSON.stringify(tok)}`, style: `height:${LENS_CELL_H}px;line-height:${LENS_CELL_H}px` } }),
      ),
    );
    this.colLabels.replaceChildren(
      ...(grid?.labels ?? []).slice(0, layers).map((label, c) =>
        el("div", { testid: "lw-res-lens-layer", className: "lw-col-label", text: label, attrs: { "data-index": String(c), style: `width:${LENS_CELL_W}px` } }),
      ),
    );
    this.paint();
  }

  /** The top-k (token, probability) pairs of a cell. */
  top(cell: Cell): Array<{ token: string; prob: number }> {
    const g = this.data;
    if (!g) return [];
    const [, layers, k] = g.ids.shape as [number, number, number];
    const base = (cell.row * layers + cell.col) * k;
    return Array.from({ length: k }, (_, j) => ({
      token: g.vocab[g.ids.data[base + j] ?? -1] ?? "?",
      prob: g.probs.data[base + j] ?? NaN,
    }));
  }

  paint(): void {
    const overlays: Overlay[] = [this.textOverlay()];
    if (this.hover) overlays.push(outlineCell(this.hover, this.colors().fg, 1));
    this.grid.canvas.dataset.hover = this.hover ? `${this.hover.row},${this.hover.col}` : "";
    this.a11y.setActive(this.hover);
    this.grid.paint(overlays);
  }

  /** Each cell's top-1 probability, row-major (positions x layers). */
  topProbs(g: LensGridData): Float32Array {
    const [n, layers, k] = g.ids.shape as [number, number, number];
    const out = new Float32Array(n * layers);
    for (let i = 0; i < n * layers; i++) out[i] = g.probs.data[i * k] ?? NaN;
    return out;
  }

  /** Each cell's top token as canvas text (untrusted strings are only ever drawn as text). */
  private textOverlay(): Overlay {
    return (ctx, geo) => {
      const g = this.data;
      const scale = this.scale;
      if (!g || !scale || typeof ctx.fillText !== "function") return;
      ctx.font = `10px ${this.colors().font}`;
      ctx.textBaseline = "middle";
      ctx.textAlign = "left";
      for (let r = 0; r < geo.rows; r++) {
        for (let c = 0; c < geo.cols; c++) {
          const best = this.top({ row: r, col: c })[0];
          if (!best) continue;
          ctx.fillStyle = textOn(scale.rgba(best.prob));
          ctx.fillText(clip(visibleToken(best.token), 7), c * geo.cellW + 2, (r + 0.5) * geo.cellH, geo.cellW - 4);
        }
      }
    };
  }
}

function clip(text: string, n: number): string {
  const chars = [...text];
  return chars.length > n ? `${chars.slice(0, n - 1).join("")}…` : text;
}
