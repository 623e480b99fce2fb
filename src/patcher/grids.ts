/**
 * One run's grid: a canvas of layers x columns (positions or heads) with row labels
 * `L{l}` and column labels (the run's tokens, or `H{h}` / `KV{h}`), plus overlay helpers
 * for selections, chips and drop previews. Geometry follows src/DOM.md (cells start at the
 * canvas' top-left corner).
 */
import { MultiGridA11y } from "../shared/a11y";
import type { ColorScale } from "../shared/colors";
import { el } from "../shared/dom";
import { GridCanvas, type Overlay } from "../shared/grid";
import { visibleToken } from "../shared/tokens";
import type { Rect } from "./rect";

export class GridPanel {
  readonly node: HTMLDivElement;
  readonly grid: GridCanvas;
  readonly a11y: MultiGridA11y;
  private readonly rowLabels: HTMLDivElement;
  private readonly colLabels: HTMLDivElement;

  constructor(readonly name: "clean" | "corrupted", title: string) {
    const canvas = el("canvas", {
      testid: `lw-${name}-grid`,
      className: "lw-canvas lw-patch-canvas",
      attrs: { tabindex: name === "clean" ? "0" : "-1" },
    });
    this.grid = new GridCanvas(canvas);
    this.a11y = new MultiGridA11y(
      canvas,
      name === "clean"
        ? "Clean run, layers by columns: arrow keys select cells, Shift extends, Enter patches them into the corrupted run, a ablates"
        : "Corrupted run: cells patched from the clean run",
    );
    this.rowLabels = el("div", { className: "lw-row-labels" });
    this.colLabels = el("div", { className: "lw-col-labels" });
    this.node = el("div", {
      testid: `lw-${name}-panel`,
      className: "lw-patch-panel",
      children: [
        el("div", { className: "lw-patch-panel-title", text: title }),
        el("div", { className: "lw-grid", children: [el("div"), this.colLabels, this.rowLabels, canvas] }),
      ],
    });
  }

  get canvas(): HTMLCanvasElement {
    return this.grid.canvas;
  }

  /** Resize to rows x cols (cell px) and relabel; column labels are token strings or names. */
  setShape(rows: number, cols: number, cell: number, colLabels: string[], tokens: boolean): void {
    const g = this.grid.geometry;
    const shape = g.rows !== rows || g.cols !== cols;
    this.grid.setGeometry({ rows, cols, cellW: cell, cellH: cell });
    if (shape) this.a11y.setCells(rows, cols, () => "");
    this.rowLabels.replaceChildren(
      ...Array.from({ length: rows }, (_, r) =>
        el("div", { className: "lw-row-label", text: `L${r}`, attrs: { "data-index": String(r), style: `height:${cell}px;line-height:${cell}px` } }),
      ),
    );
    this.colLabels.replaceChildren(
      ...Array.from({ length: cols }, (_, c) => {
        const raw = colLabels[c] ?? String(c);
        return el("div", {
          testid: `lw-${this.name}-col-label`,
          className: "lw-col-label",
          text: tokens ? visibleToken(raw) : raw,
          attrs: { "data-index": String(c), style: `width:${cell}px`, title: tokens ? `${c}: ${JSON.stringify(raw)}` : raw },
        });
      }),
    );
  }

  setValues(values: ArrayLike<number>, scale: ColorScale): void {
    this.grid.setValues(values, scale);
  }

  paint(overlays: Overlay[]): void {
    this.grid.paint(overlays);
  }
}

/** Overlay: fill the given cells. */
export function fillCells(cells: Array<[number, number]>, color: string): Overlay {
  return (ctx, g) => {
    ctx.fillStyle = color;
    for (const [r, c] of cells) ctx.fillRect(c * g.cellW + 1, r * g.cellH + 1, g.cellW - 2, g.cellH - 2);
  };
}

/** Overlay: outline a rectangle of cells (dashed when `dashed`). */
export function outlineRect(rect: Rect, color: string, width = 2, dashed = false): Overlay {
  return (ctx, g) => {
    ctx.save?.();
    ctx.strokeStyle = color;
    ctx.lineWidth = width;
    if (dashed && typeof ctx.setLineDash === "function") ctx.setLineDash([4, 3]);
    ctx.strokeRect(
      rect.c0 * g.cellW + width / 2,
      rect.r0 * g.cellH + width / 2,
      (rect.c1 - rect.c0 + 1) * g.cellW - width,
      (rect.r1 - rect.r0 + 1) * g.cellH - width,
    );
    ctx.restore?.();
  };
}
