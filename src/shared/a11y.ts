/**
 * Accessible alternative of a canvas grid: the canvas is `role="grid"` and its fallback
 * content (which browsers expose to assistive technology) is a table of `role="row"` /
 * `role="gridcell"` elements holding each cell's label and value as text. The keyboard
 * cursor is announced with `aria-activedescendant`, the selection with `aria-selected`.
 *
 * DOM contract: the cells are `[data-testid="lw-grid-cell"]` with `data-row` / `data-col`
 * and an `id`; the canvas' `aria-activedescendant` names the cursor's cell.
 */
import { el } from "./dom";
import type { Cell } from "./grid";

let nextPrefix = 0;

export class GridA11y {
  private readonly prefix = `lw-g${(nextPrefix++).toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
  private rows = 0;
  protected cols = 0;
  protected cells: HTMLElement[] = [];
  protected selected: HTMLElement | null = null;

  constructor(readonly canvas: HTMLCanvasElement, label: string) {
    canvas.setAttribute("role", "grid");
    canvas.setAttribute("aria-label", label);
    if (!canvas.hasAttribute("tabindex")) canvas.setAttribute("tabindex", "0");
  }

  /** Rebuild the table: `text(r, c)` is what a screen reader says for the cell. */
  setCells(rows: number, cols: number, text: (r: number, c: number) => string): void {
    this.rows = rows;
    this.cols = cols;
    this.cells = [];
    const out: HTMLElement[] = [];
    for (let r = 0; r < rows; r++) {
      const row: HTMLElement[] = [];
      for (let c = 0; c < cols; c++) {
        const cell = el("span", {
          testid: "lw-grid-cell",
          text: text(r, c),
          attrs: { role: "gridcell", id: `${this.prefix}-${r}-${c}`, "data-row": String(r), "data-col": String(c), "aria-selected": "false" },
        });
        this.cells.push(cell);
        row.push(cell);
      }
      out.push(el("div", { attrs: { role: "row" }, children: row }));
    }
    this.canvas.replaceChildren(...out);
    this.selected = null;
    const active = this.canvas.getAttribute("aria-activedescendant");
    if (active && !this.canvas.querySelector(`[id="${active}"]`)) this.canvas.removeAttribute("aria-activedescendant");
  }

  private cell(at: Cell | null): HTMLElement | null {
    if (!at || at.row < 0 || at.col < 0 || at.row >= this.rows || at.col >= this.cols) return null;
    return this.cells[at.row * this.cols + at.col] ?? null;
  }

  /** The keyboard cursor (null: none). */
  setActive(at: Cell | null): void {
    const node = this.cell(at);
    if (node) this.canvas.setAttribute("aria-activedescendant", node.id);
    else this.canvas.removeAttribute("aria-activedescendant");
  }

  setSelected(at: Cell | null): void {
    this.selected?.setAttribute("aria-selected", "false");
    this.selected = this.cell(at);
    this.selected?.setAttribute("aria-selected", "true");
  }
}

/** A grid whose cells can be selected as a set and relabelled in place (the patcher's). */
export class MultiGridA11y extends GridA11y {
  /** Mark several selected cells (e.g. a rectangle). */
  setSelection(selected: (r: number, c: number) => boolean): void {
    this.selected = null;
    this.cells.forEach((cell, i) => cell.setAttribute("aria-selected", String(selected(Math.floor(i / this.cols), i % this.cols))));
  }

  /** Relabel the cells without rebuilding the table (same shape). */
  relabel(text: (r: number, c: number) => string): void {
    this.cells.forEach((cell, i) => {
      const t = text(Math.floor(i / this.cols), i % this.cols);
      if (cell.textContent !== t) cell.textContent = t;
    });
  }
}

/** Arrow keys / Home / End / PageUp / PageDown move a cursor inside a rows x cols grid (null: not a move key). */
export function moveCursor(key: string, at: Cell | null, rows: number, cols: number): Cell | null {
  // [row step, column step]; Home / End jump to the row's ends, pages move 8 rows.
  const steps: Record<string, [number, number]> = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1], PageUp: [-8, 0], PageDown: [8, 0], Home: [0, -cols], End: [0, cols] };
  const step = steps[key];
  if (!step || !rows || !cols) return null;
  if (!at) return { row: 0, col: 0 };
  const clamp = (v: number, n: number) => Math.max(0, Math.min(n - 1, v));
  return { row: clamp(at.row + step[0], rows), col: clamp(at.col + step[1], cols) };
}
