/**
 * "All heads": every head's attribution as a layer x head heatmap, built from the shared
 * heatmap modules (grid canvas, diverging scale, legend). The canvas
 * (`lw-res-heads-canvas`) follows the canvas geometry contract of src/DOM.md and carries
 * `data-selected="l,h"` / `data-hover="l,h"`.
 */
import { GridA11y } from "../shared/a11y";
import type { ColorScale } from "../shared/colors";
import { el } from "../shared/dom";
import { GridCanvas, outlineCell, type Cell, type Overlay } from "../shared/grid";
import { formatValue } from "../shared/format";
import { Legend } from "../shared/legend";
import type { Tensor } from "../shared/tensor";

export const HEAD_CELL = 20;

export class HeadGrid {
  readonly node: HTMLDivElement;
  readonly grid: GridCanvas;
  readonly legend = new Legend();
  private readonly rowLabels: HTMLDivElement;
  private readonly colLabels: HTMLDivElement;
  values: Tensor = { shape: [0, 0], data: new Float32Array(0) };
  selected: Cell | null = null;
  hover: Cell | null = null;
  /** Keyboard cursor, drawn while the canvas has focus. */
  cursor: Cell | null = null;
  readonly a11y: GridA11y;

  constructor(private readonly colors: () => { fg: string; muted: string; accent: string }) {
    const canvas = el("canvas", { testid: "lw-res-heads-canvas", className: "lw-canvas", attrs: { tabindex: "0" } });
    this.grid = new GridCanvas(canvas);
    this.a11y = new GridA11y(canvas, "Direct logit attribution per head: arrow keys move, Enter opens a head");
    this.rowLabels = el("div", { className: "lw-row-labels" });
    this.colLabels = el("div", { className: "lw-col-labels" });
    this.node = el("div", {
      testid: "lw-res-heads",
      className: "lw-res-heads",
      children: [el("div", { className: "lw-grid", children: [el("div"), this.colLabels, this.rowLabels, canvas] }), this.legend.node],
    });
  }

  get rows(): number {
    return this.values.shape[0] ?? 0;
  }

  get cols(): number {
    return this.values.shape[1] ?? 0;
  }

  value(cell: Cell): number {
    return this.values.data[cell.row * this.cols + cell.col] ?? NaN;
  }

  render(values: Tensor, scale: ColorScale): void {
    this.values = values;
    this.grid.setGeometry({ rows: this.rows, cols: this.cols, cellW: HEAD_CELL, cellH: HEAD_CELL });
    this.grid.setValues(values.data, scale);
    this.legend.update(scale);
    this.a11y.setCells(this.rows, this.cols, (r, c) => `L${r}H${c}: ${formatValue(this.value({ row: r, col: c }))}`);
    const style = (k: string) => `${k}:${HEAD_CELL}px;line-height:${HEAD_CELL}px`;
    this.rowLabels.replaceChildren(
      ...Array.from({ length: this.rows }, (_, r) =>
        el("div", { testid: "lw-res-heads-row-label", className: "lw-row-label", text: `L${r}`, attrs: { "data-index": String(r), style: style("height") } }),
      ),
    );
    this.colLabels.replaceChildren(
      ...Array.from({ length: this.cols }, (_, c) =>
        el("div", { testid: "lw-res-heads-col-label", className: "lw-col-label", text: `H${c}`, attrs: { "data-index": String(c), style: `width:${HEAD_CELL}px` } }),
      ),
    );
    this.paint();
  }

  paint(): void {
    const d = this.grid.canvas.dataset;
    d.selected = this.selected ? `${this.selected.row},${this.selected.col}` : "";
    d.hover = this.hover ? `${this.hover.row},${this.hover.col}` : "";
    const { fg, muted, accent } = this.colors();
    const overlays: Overlay[] = [];
    if (this.hover) overlays.push(outlineCell(this.hover, muted, 1));
    if (this.selected && this.selected.row < this.rows && this.selected.col < this.cols) overlays.push(outlineCell(this.selected, fg, 2));
    if (this.cursor && document.activeElement === this.grid.canvas) overlays.push(outlineCell(this.cursor, accent, 2));
    d.cursor = this.cursor ? `${this.cursor.row},${this.cursor.col}` : "";
    this.a11y.setSelected(this.selected);
    this.a11y.setActive(this.cursor);
    this.grid.paint(overlays);
  }
}
