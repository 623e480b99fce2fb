/** Rectangles of grid cells (inclusive bounds, always normalised: r0 <= r1, c0 <= c1). */
import type { Cell } from "../shared/grid";

export interface Rect {
  r0: number;
  c0: number;
  r1: number;
  c1: number;
}

/** The rectangle spanned by two corner cells. */
export function rectOf(a: Cell, b: Cell): Rect {
  return { r0: Math.min(a.row, b.row), c0: Math.min(a.col, b.col), r1: Math.max(a.row, b.row), c1: Math.max(a.col, b.col) };
}

export function single(c: Cell): Rect {
  return rectOf(c, c);
}

export function contains(r: Rect | null, c: Cell): boolean {
  return !!r && c.row >= r.r0 && c.row <= r.r1 && c.col >= r.c0 && c.col <= r.c1;
}

export function sameRect(a: Rect | null, b: Rect | null): boolean {
  if (!a || !b) return a === b;
  return a.r0 === b.r0 && a.c0 === b.c0 && a.r1 === b.r1 && a.c1 === b.c1;
}

export function isSingle(r: Rect): boolean {
  return r.r0 === r.r1 && r.c0 === r.c1;
}

/** `"r0,c0,r1,c1"` (data attributes), or `""` for none. */
export function rectKey(r: Rect | null): string {
  return r ? `${r.r0},${r.c0},${r.r1},${r.c1}` : "";
}

/** Whether the rectangle lies inside a rows x cols grid. */
export function inGrid(r: Rect, rows: number, cols: number): boolean {
  return r.r0 >= 0 && r.c0 >= 0 && r.r1 < rows && r.c1 < cols;
}

export function clampCell(c: Cell, rows: number, cols: number): Cell {
  return { row: Math.max(0, Math.min(rows - 1, c.row)), col: Math.max(0, Math.min(cols - 1, c.col)) };
}
