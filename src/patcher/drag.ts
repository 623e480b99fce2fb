/**
 * The drag state machine of the patcher, as a pure function `step(state, input)`.
 *
 * - Press on a clean cell and drag (past {@link DRAG_THRESHOLD} px) to carry it; pressing
 *   inside the current selection carries the whole selection.
 * - Shift + press/drag on the clean grid selects a rectangle (rubber band) instead.
 * - Release over the corrupted grid -> `drop` on "corrupted" (patch the carried cells, at
 *   the same layers/positions); over the ablate target -> `drop` on "ablate"; anywhere else
 *   (or Escape / pointer cancel) -> `cancelled`.
 * - Press and release without moving is a click: it selects that cell (clicking the only
 *   selected cell again clears the selection).
 *
 * The view turns DOM pointer events into {@link DragInput}s (hit-testing the grids) and
 * applies the returned {@link Effect}s; nothing here touches the DOM.
 */
import type { Cell } from "../shared/grid";
import { contains, isSingle, rectOf, sameRect, single, type Rect } from "./rect";

export const DRAG_THRESHOLD = 4;

export type Target =
  | { kind: "clean"; cell: Cell | null }
  | { kind: "corrupted"; cell: Cell | null }
  | { kind: "ablate" }
  | { kind: "none" };

export type DragState =
  | { phase: "idle" }
  | { phase: "pressed"; x: number; y: number; cell: Cell; payload: Rect; toggles: boolean }
  | { phase: "banding"; anchor: Cell; rect: Rect }
  | { phase: "dragging"; payload: Rect; over: Target };

export type DragInput =
  | { type: "down"; target: Target; x: number; y: number; shift: boolean; selection: Rect | null; anchor: Cell | null }
  | { type: "move"; target: Target; x: number; y: number }
  | { type: "up"; target: Target; x: number; y: number }
  | { type: "cancel" };

export type Effect =
  | { type: "select"; rect: Rect | null; anchor: Cell | null }
  | { type: "hover"; over: Target; payload: Rect }
  | { type: "drop"; rect: Rect; target: "corrupted" | "ablate" }
  | { type: "cancelled" };

export interface Step {
  state: DragState;
  effects: Effect[];
}

export const IDLE: DragState = { phase: "idle" };

function moved(s: { x: number; y: number }, x: number, y: number): boolean {
  return Math.hypot(x - s.x, y - s.y) > DRAG_THRESHOLD;
}

export function step(state: DragState, input: DragInput): Step {
  if (input.type === "cancel") {
    return { state: IDLE, effects: state.phase === "dragging" ? [{ type: "cancelled" }] : [] };
  }
  switch (state.phase) {
    case "idle":
      return input.type === "down" ? press(input) : { state, effects: [] };
    case "pressed":
      if (input.type === "move") {
        if (!moved(state, input.x, input.y)) return { state, effects: [] };
        const next: DragState = { phase: "dragging", payload: state.payload, over: input.target };
        return { state: next, effects: [{ type: "hover", over: input.target, payload: state.payload }] };
      }
      if (input.type === "up") {
        const rect = state.toggles ? null : single(state.cell);
        return { state: IDLE, effects: [{ type: "select", rect, anchor: rect ? state.cell : null }] };
      }
      return { state, effects: [] };
    case "banding":
      if (input.type === "move" || input.type === "up") {
        const cell = input.target.kind === "clean" ? input.target.cell : null;
        const rect = cell ? rectOf(state.anchor, cell) : state.rect;
        const next: DragState = input.type === "up" ? IDLE : { phase: "banding", anchor: state.anchor, rect };
        const changed = !sameRect(rect, state.rect) || input.type === "up";
        return { state: next, effects: changed ? [{ type: "select", rect, anchor: state.anchor }] : [] };
      }
      return { state, effects: [] };
    case "dragging":
      if (input.type === "move") {
        return { state: { ...state, over: input.target }, effects: [{ type: "hover", over: input.target, payload: state.payload }] };
      }
      if (input.type === "up") {
        const t = input.target.kind;
        if (t === "corrupted" || t === "ablate") {
          return { state: IDLE, effects: [{ type: "drop", rect: state.payload, target: t }] };
        }
        return { state: IDLE, effects: [{ type: "cancelled" }] };
      }
      return { state, effects: [] };
  }
}

function press(input: Extract<DragInput, { type: "down" }>): Step {
  const target = input.target;
  if (target.kind !== "clean" || !target.cell) return { state: IDLE, effects: [] };
  const cell = target.cell;
  if (input.shift) {
    const anchor = input.anchor && input.selection ? input.anchor : cell;
    const rect = rectOf(anchor, cell);
    return { state: { phase: "banding", anchor, rect }, effects: [{ type: "select", rect, anchor }] };
  }
  const inside = contains(input.selection, cell);
  const payload = inside && input.selection ? input.selection : single(cell);
  const toggles = inside && !!input.selection && isSingle(input.selection);
  const effects: Effect[] = inside ? [] : [{ type: "select", rect: payload, anchor: cell }];
  return { state: { phase: "pressed", x: input.x, y: input.y, cell, payload, toggles }, effects };
}
