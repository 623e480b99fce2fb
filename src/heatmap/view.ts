/**
 * Head heatmap view: `[n_layers, n_heads]` cells on a canvas that stretches to the width it
 * has, a legend with its value label and a marker at the hovered value, hover tooltip
 * `L{l}H{h}` + value, click or Enter -> `selected = {layer, head}`, arrow keys move a
 * cursor, Escape clears. Screen readers get the cells as a grid (shared/a11y.ts).
 * DOM contract: src/DOM.md.
 */
import { GridA11y, moveCursor } from "../shared/a11y";
import { divergingScale, makeScale, type ColorScale } from "../shared/colors";
import { el } from "../shared/dom";
import { exportPng, exportSvg } from "../shared/download";
import type { FigureSpec } from "../shared/figure";
import { formatValue } from "../shared/format";
import { Frame } from "../shared/frame";
import { GridCanvas, outlineCell, type Cell, type Overlay } from "../shared/grid";
import { Legend } from "../shared/legend";
import { decodeOrEmpty, type Tensor } from "../shared/tensor";
import { getInt, getNumber, getString, getStrings, slug } from "../shared/traits";
import type { Cleanup, RenderProps, WidgetModel } from "../shared/types";
import { injectHeatmapStyles } from "./styles";

interface Selection {
  layer: number;
  head: number;
}

export function readSelection(model: WidgetModel): Selection | null {
  const v = model.get("selected") as Record<string, unknown> | null | undefined;
  if (!v || typeof v !== "object") return null;
  const { layer, head } = v;
  return Number.isInteger(layer) && Number.isInteger(head) ? { layer: layer as number, head: head as number } : null;
}

/** Widest cell when the heatmap stretches to the width it has, as a multiple of the row height. */
const MAX_STRETCH = 4;

export class HeatmapView {
  readonly frame: Frame;
  readonly grid: GridCanvas;
  readonly a11y: GridA11y;
  private readonly legend = new Legend();
  private readonly legendTitle: HTMLDivElement;
  private readonly legendMarker: HTMLDivElement;
  private readonly legendValue: HTMLSpanElement;
  private readonly rowLabels: HTMLDivElement;
  private readonly colLabels: HTMLDivElement;
  private values: Tensor = { shape: [0, 0], data: new Float32Array(0) };
  private scale: ColorScale;
  private hover: Cell | null = null;
  /** Keyboard cursor (arrow keys); drawn while the canvas has focus. */
  cursor: Cell | null = null;
  private width = 0;

  constructor(private readonly model: WidgetModel, host: HTMLElement) {
    this.frame = new Frame(model, host, "heatmap");
    const canvas = el("canvas", { testid: "lw-heatmap-canvas", className: "lw-canvas", attrs: { tabindex: "0" } });
    this.grid = new GridCanvas(canvas);
    this.a11y = new GridA11y(canvas, "Head heatmap: arrow keys move, Enter selects, Escape clears");
    this.rowLabels = el("div", { className: "lw-row-labels" });
    this.colLabels = el("div", { className: "lw-col-labels" });
    this.legendTitle = el("div", { testid: "lw-legend-title", className: "lw-legend-title" });
    this.legendValue = el("span", { testid: "lw-legend-value", className: "lw-legend-value" });
    this.legendMarker = el("div", { className: "lw-legend-marker", children: [this.legendValue] });
    this.legendMarker.hidden = true;
    this.frame.body.classList.add("lw-heatmap-body");
    this.frame.body.append(
      el("div", { className: "lw-grid", children: [el("div"), this.colLabels, this.rowLabels, canvas] }),
      el("div", { className: "lw-legend-box", children: [this.legendTitle, el("div", { className: "lw-legend-wrap", children: [this.legend.node, this.legendMarker] })] }),
    );
    injectHeatmapStyles();
    this.scale = divergingScale(1, this.frame.theme.dark);
    this.frame.button("lw-export-png", "PNG", () => exportPng(this.figure(), `${this.filename()}.png`));
    this.frame.button("lw-export-svg", "SVG", () => exportSvg(this.figure(), `${this.filename()}.svg`));

    const d = this.frame.disposer;
    d.listen(canvas, "mousemove", (ev) => this.onHover(ev));
    d.listen(canvas, "mouseleave", () => this.setHover(null));
    d.listen(canvas, "click", (ev) => this.onClick(ev));
    d.listen(canvas, "keydown", (ev) => this.onKey(ev));
    d.listen(canvas, "focus", () => {
      if (!this.cursor) this.cursor = this.selectedCell() ?? (this.rows && this.cols ? { row: 0, col: 0 } : null);
      this.a11y.setActive(this.cursor);
      this.paint();
    });
    d.listen(canvas, "blur", () => {
      if (!this.hover) this.frame.tooltip.hide();
      this.showValue(this.hover ? this.value(this.hover) : null);
      this.paint();
    });
    this.frame.watch(["values", "labels", "row_labels", "col_labels", "scale", "vmin", "vmax", "cell_size", "fit_width", "value_label"], () => this.rebuild());
    this.frame.watch(["selected"], () => this.paint());
    this.frame.watchTheme(() => this.rebuild());
    if (typeof ResizeObserver === "function") {
      const ro = new ResizeObserver(() => {
        const w = this.frame.root.clientWidth;
        if (Math.abs(w - this.width) >= 8) this.rebuild();
      });
      ro.observe(this.frame.root);
      d.add(() => ro.disconnect());
    }
    this.rebuild();
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

  label(cell: Cell): string {
    return getStrings(this.model, "labels")[cell.row * this.cols + cell.col] ?? `L${cell.row}H${cell.col}`;
  }

  private selectedCell(): Cell | null {
    const sel = readSelection(this.model);
    return sel && sel.layer < this.rows && sel.head < this.cols ? { row: sel.layer, col: sel.head } : null;
  }

  /** Cell width and height: rows are `cell_size` tall; columns stretch to the width there is (`fit_width`). */
  private cellSize(): { w: number; h: number } {
    const h = Math.max(4, Math.min(64, getInt(this.model, "cell_size") ?? 22));
    // Not laid out (0: detached, or mid theme switch): keep the last width the widget had.
    this.width = this.frame.root.clientWidth || this.width;
    if (this.model.get("fit_width") === false || !this.width || !this.cols) return { w: h, h };
    const labels = this.rowLabels.offsetWidth || 40;
    const legend = 110;
    const room = this.width - labels - legend - 40;
    return { w: Math.max(h, Math.min(MAX_STRETCH * h, Math.floor(room / this.cols))), h };
  }

  private rebuild(): void {
    try {
      const t = decodeOrEmpty(this.model.get("values"));
      this.values = t.shape.length === 2 ? t : { shape: [0, 0], data: new Float32Array(0) };
    } catch (err) {
      this.frame.showError(`Could not decode values: ${(err as Error).message}`);
      this.values = { shape: [0, 0], data: new Float32Array(0) };
    }
    const kind = getString(this.model, "scale", "diverging") === "sequential" ? "sequential" : "diverging";
    const lo = getNumber(this.model, "vmin");
    const hi = getNumber(this.model, "vmax");
    const { dark, background } = this.frame.theme;
    this.scale =
      kind === "diverging"
        ? divergingScale(hi ?? Math.abs(lo ?? 1), dark, background)
        : makeScale("sequential", lo ?? 0, hi ?? 1, dark, background);
    this.renderLabels();
    const { w, h } = this.cellSize();
    this.grid.setGeometry({ rows: this.rows, cols: this.cols, cellW: w, cellH: h });
    for (const node of this.rowLabels.children) (node as HTMLElement).style.cssText = `height:${h}px;line-height:${h}px`;
    for (const node of this.colLabels.children) (node as HTMLElement).style.width = `${w}px`;
    this.grid.setValues(this.values.data, this.scale);
    this.legend.update(this.scale);
    this.legendTitle.textContent = getString(this.model, "value_label") || "value";
    this.a11y.setCells(this.rows, this.cols, (r, c) => `${this.label({ row: r, col: c })}: ${formatValue(this.value({ row: r, col: c }))}`);
    if (this.cursor && (this.cursor.row >= this.rows || this.cursor.col >= this.cols)) this.cursor = null;
    this.paint();
  }

  private renderLabels(): void {
    const rows = getStrings(this.model, "row_labels");
    const cols = getStrings(this.model, "col_labels");
    this.rowLabels.replaceChildren(
      ...Array.from({ length: this.rows }, (_, r) =>
        el("div", { testid: "lw-row-label", className: "lw-row-label", text: rows[r] ?? `L${r}`, attrs: { "data-index": String(r) } }),
      ),
    );
    this.colLabels.replaceChildren(
      ...Array.from({ length: this.cols }, (_, c) =>
        el("div", { testid: "lw-col-label", className: "lw-col-label", text: cols[c] ?? `H${c}`, attrs: { "data-index": String(c) } }),
      ),
    );
  }

  private paint(): void {
    const sel = readSelection(this.model);
    const d = this.grid.canvas.dataset;
    d.selected = sel ? `${sel.layer},${sel.head}` : "";
    d.hover = this.hover ? `${this.hover.row},${this.hover.col}` : "";
    d.cursor = this.cursor ? `${this.cursor.row},${this.cursor.col}` : "";
    const focused = typeof document !== "undefined" && document.activeElement === this.grid.canvas;
    const overlays: Overlay[] = [];
    if (this.hover) overlays.push(outlineCell(this.hover, this.frame.theme.muted, 1));
    if (sel) overlays.push(outlineCell({ row: sel.layer, col: sel.head }, this.frame.theme.foreground, 2));
    if (focused && this.cursor) overlays.push(outlineCell(this.cursor, this.frame.theme.accent, 2));
    this.a11y.setSelected(this.selectedCell());
    this.grid.paint(overlays);
  }

  /** Mark `value` on the legend ramp (null hides the marker). */
  private showValue(value: number | null): void {
    if (value === null) {
      this.legendMarker.hidden = true;
      return;
    }
    this.legendMarker.hidden = false;
    this.legendMarker.style.top = `${((1 - this.scale.position(value)) * 100).toFixed(2)}%`;
    this.legendValue.textContent = formatValue(value);
  }

  private setHover(cell: Cell | null): void {
    this.hover = cell;
    if (!cell) this.frame.tooltip.hide();
    this.showValue(cell ? this.value(cell) : null);
    this.paint();
  }

  private onHover(ev: MouseEvent): void {
    const cell = this.grid.cellAt(ev);
    if (!cell) return this.setHover(null);
    this.frame.tooltip.show([this.label(cell), formatValue(this.value(cell))], ev.clientX, ev.clientY);
    if (this.hover?.row !== cell.row || this.hover?.col !== cell.col) this.setHover(cell);
  }

  private onClick(ev: MouseEvent): void {
    const cell = this.grid.cellAt(ev);
    if (!cell) return;
    this.cursor = cell;
    this.a11y.setActive(cell);
    this.toggle(cell);
  }

  private toggle(cell: Cell): void {
    const sel = readSelection(this.model);
    const same = sel && sel.layer === cell.row && sel.head === cell.col;
    this.select(same ? null : { layer: cell.row, head: cell.col });
  }

  /** Arrow keys move the cursor (its label and value show in the tooltip), Enter/Space select, Escape clears. */
  private onKey(ev: KeyboardEvent): void {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.key === "Escape") {
      this.select(null);
      return;
    }
    if ((ev.key === "Enter" || ev.key === " ") && this.cursor) {
      ev.preventDefault();
      this.toggle(this.cursor);
      return;
    }
    const next = moveCursor(ev.key, this.cursor, this.rows, this.cols);
    if (!next) return;
    ev.preventDefault();
    this.cursor = next;
    this.a11y.setActive(next);
    const box = this.grid.canvas.getBoundingClientRect();
    const { cellW, cellH } = this.grid.geometry;
    this.frame.tooltip.show([this.label(next), formatValue(this.value(next))], box.left + (next.col + 0.5) * cellW, box.top + (next.row + 0.5) * cellH);
    this.showValue(this.value(next));
    this.paint();
  }

  /** Set `selected` (null clears) and sync it to the kernel. */
  select(sel: Selection | null): void {
    this.frame.update({ selected: sel });
    this.paint();
  }

  figure(): FigureSpec {
    return {
      title: getString(this.model, "title"),
      rows: this.rows,
      cols: this.cols,
      values: this.values.data,
      rowLabels: Array.from({ length: this.rows }, (_, r) => getStrings(this.model, "row_labels")[r] ?? `L${r}`),
      colLabels: Array.from({ length: this.cols }, (_, c) => getStrings(this.model, "col_labels")[c] ?? `H${c}`),
      scale: this.scale,
      cell: this.grid.geometry.cellW,
      theme: this.frame.theme,
    };
  }

  private filename(): string {
    return slug(getString(this.model, "title"), "head-heatmap");
  }

  dispose(): void {
    this.frame.disposer.dispose();
  }
}

export function render({ model, el: host }: RenderProps): Cleanup {
  const view = new HeatmapView(model, host);
  return () => view.dispose();
}
