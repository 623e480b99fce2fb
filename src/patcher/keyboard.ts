/**
 * Keyboard alternative to dragging, on the focused clean grid: arrows move the cursor
 * (Shift extends the selection from its anchor), Home/End jump to the first/last column,
 * Enter patches the selection, `a` ablates it, Escape clears it.
 */
import type { Cell } from "../shared/grid";
import { clampCell, rectOf, type Rect } from "./rect";

export type KeyAction =
  | { type: "select"; rect: Rect; anchor: Cell; cursor: Cell }
  | { type: "patch" }
  | { type: "ablate" }
  | { type: "clear" };

const MOVES: Record<string, [number, number]> = {
  ArrowUp: [-1, 0],
  ArrowDown: [1, 0],
  ArrowLeft: [0, -1],
  ArrowRight: [0, 1],
};

export function gridKey(
  key: string,
  shift: boolean,
  cursor: Cell | null,
  anchor: Cell | null,
  rows: number,
  cols: number,
): KeyAction | null {
  if (key === "Enter") return { type: "patch" };
  if (key === "a" || key === "A") return { type: "ablate" };
  if (key === "Escape") return { type: "clear" };
  if (!rows || !cols) return null;
  let next: Cell | null = null;
  const from = cursor ?? { row: 0, col: 0 };
  const move = MOVES[key];
  if (move) next = cursor ? clampCell({ row: from.row + move[0], col: from.col + move[1] }, rows, cols) : from;
  else if (key === "Home") next = { row: from.row, col: 0 };
  else if (key === "End") next = { row: from.row, col: cols - 1 };
  if (!next) return null;
  const base = shift && anchor ? anchor : next;
  return { type: "select", rect: rectOf(base, next), anchor: base, cursor: next };
}
