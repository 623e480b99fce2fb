/**
 * Head heatmap view: `[n_layers, n_heads]` cells on a canvas, diverging legend, hover
 * tooltip `L{l}H{h}` + value, click -> `selected = {layer, head}`. DOM contract: src/DOM.md.
 */
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

export class HeatmapView {
  readonly frame: Frame;
  readonly grid: GridCanvas;
  private readonly legend = new Legend();
  private readonly rowLabels: HTMLDivElement;
  private readonly colLabels: HTMLDivElement;
  private values: Tensor = { shape: [0, 0], data: new Float32Array(0) };
  private scale: ColorScale;
  private hover: Cell | null = null;

  constructor(private readonly model: WidgetModel, host: HTMLElement) {
    this.frame = new Frame(model, host, "heatmap");
    const canvas = el("canvas", { testid: "lw-heatmap-canvas", className: "lw-canvas", attrs: { tabindex: "0" } });
    this.grid = new GridCanvas(canvas);
    this.rowLabels = el("div", { className: "lw-row-labels" });
    this.colLabels = el("div", { className: "lw-col-labels" });
    this.frame.body.append(
      el("div", { className: "lw-grid", children: [el("div"), this.colLabels, this.rowLabels, canvas] }),
      this.legend.node,
    );
    this.scale = divergingScale(1, this.frame.theme.dark);
    this.frame.button("lw-export-png", "PNG", () => exportPng(this.figure(), `${this.filename()}.png`));
    this.frame.button("lw-export-svg", "SVG", () => exportSvg(this.figure(), `${this.filename()}.svg`));

    const d = this.frame.disposer;
    d.listen(canvas, "mousemove", (ev) => this.onHover(ev));
    d.listen(canvas, "mouseleave", () => this.setHover(null));
    d.listen(canvas, "click", (ev) => this.onClick(ev));
    d.listen(canvas, "keydown", (ev) => {
      if (ev.key === "Escape") this.select(null);
    });
    for (const key of ["values", "labels", "row_labels", "col_labels", "scale", "vmin", "vmax", "cell_size"]) {
      d.onModel(model, `change:${key}`, () => this.rebuild());
    }
    d.onModel(model, "change:selected", () => this.paint());
    this.frame.watchTheme(() => this.rebuild());
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
    const cell = Math.max(4, Math.min(64, getInt(this.model, "cell_size") ?? 22));
    this.grid.setGeometry({ rows: this.rows, cols: this.cols, cellW: cell, cellH: cell });
    this.grid.setValues(this.values.data, this.scale);
    this.legend.update(this.scale);
    this.renderLabels(cell);
    this.paint();
  }

  private renderLabels(cell: number): void {
    const rows = getStrings(this.model, "row_labels");
    const cols = getStrings(this.model, "col_labels");
    this.rowLabels.replaceChildren(
      ...Array.from({ length: this.rows }, (_, r) =>
        el("div", { testid: "lw-row-label", className: "lw-row-label", text: rows[r] ?? `L${r}`, attrs: { "data-index": String(r), style: `height:${cell}px;line-height:${cell}px` } }),
      ),
    );
    this.colLabels.replaceChildren(
      ...Array.from({ length: this.cols }, (_, c) =>
        el("div", { testid: "lw-col-label", className: "lw-col-label", text: cols[c] ?? `H${c}`, attrs: { "data-index": String(c), style: `width:${cell}px` } }),
      ),
    );
  }

  private paint(): void {
    const sel = readSelection(this.model);
    const d = this.grid.canvas.dataset;
    d.selected = sel ? `${sel.layer},${sel.head}` : "";
    d.hover = this.hover ? `${this.hover.row},${this.hover.col}` : "";
    const overlays: Overlay[] = [];
    if (this.hover) overlays.push(outlineCell(this.hover, this.frame.theme.muted, 1));
    if (sel) overlays.push(outlineCell({ row: sel.layer, col: sel.head }, this.frame.theme.foreground, 2));
    this.grid.paint(overlays);
  }

  private setHover(cell: Cell | null): void {
    this.hover = cell;
    if (!cell) this.frame.tooltip.hide();
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
    const sel = readSelection(this.model);
    const same = sel && sel.layer === cell.row && sel.head === cell.col;
    this.select(same ? null : { layer: cell.row, head: cell.col });
  }

  /** Set `selected` (null clears) and sync it to the kernel. */
  select(sel: Selection | null): void {
    this.model.set("selected", sel);
    this.model.save_changes();
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
