import { describe, expect, test } from "vitest";
import { DRAG_THRESHOLD, IDLE, step, type DragInput, type DragState, type Effect, type Target } from "../../src/patcher/drag";
import { gridKey } from "../../src/patcher/keyboard";
import { contains, rectOf, type Rect } from "../../src/patcher/rect";

const clean = (row: number, col: number): Target => ({ kind: "clean", cell: { row, col } });
const corrupted = (row: number, col: number): Target => ({ kind: "corrupted", cell: { row, col } });
const ablate: Target = { kind: "ablate" };
const none: Target = { kind: "none" };

function down(target: Target, x = 0, y = 0, extra: Partial<Extract<DragInput, { type: "down" }>> = {}): DragInput {
  return { type: "down", target, x, y, shift: false, selection: null, anchor: null, ...extra };
}

/** Run inputs from `state`, collecting every effect. */
function run(inputs: DragInput[], state: DragState = IDLE): { state: DragState; effects: Effect[] } {
  const effects: Effect[] = [];
  for (const input of inputs) {
    const s = step(state, input);
    state = s.state;
    effects.push(...s.effects);
  }
  return { state, effects };
}

const drops = (effects: Effect[]) => effects.filter((e) => e.type === "drop");

describe("drag state machine", () => {
  test("press, drag past the threshold and release on the corrupted grid drops the cell", () => {
    const far = DRAG_THRESHOLD + 20;
    const r = run([
      down(clean(2, 3), 10, 10),
      { type: "move", target: clean(2, 3), x: 11, y: 10 }, // below threshold: still pressed
      { type: "move", target: corrupted(0, 0), x: 10 + far, y: 10 },
      { type: "up", target: corrupted(2, 3), x: 10 + far, y: 10 },
    ]);
    expect(r.state).toEqual(IDLE);
    expect(r.effects[0]).toEqual({ type: "select", rect: rectOf({ row: 2, col: 3 }, { row: 2, col: 3 }), anchor: { row: 2, col: 3 } });
    expect(r.effects.some((e) => e.type === "hover" && e.over.kind === "corrupted")).toBe(true);
    expect(drops(r.effects)).toEqual([{ type: "drop", rect: { r0: 2, c0: 3, r1: 2, c1: 3 }, target: "corrupted" }]);
  });

  test("states along the way: pressed -> dragging -> idle", () => {
    let s = step(IDLE, down(clean(0, 0), 0, 0)).state;
    expect(s.phase).toBe("pressed");
    s = step(s, { type: "move", target: clean(0, 0), x: DRAG_THRESHOLD, y: 0 }).state;
    expect(s.phase).toBe("pressed");
    s = step(s, { type: "move", target: none, x: 50, y: 50 }).state;
    expect(s.phase).toBe("dragging");
    if (s.phase === "dragging") expect(s.over).toEqual(none);
  });

  test("release on the ablate target drops an ablation; elsewhere cancels", () => {
    const toAblate = run([down(clean(1, 1)), { type: "move", target: ablate, x: 40, y: 0 }, { type: "up", target: ablate, x: 40, y: 0 }]);
    expect(drops(toAblate.effects)).toEqual([{ type: "drop", rect: { r0: 1, c0: 1, r1: 1, c1: 1 }, target: "ablate" }]);
    for (const target of [none, clean(0, 0)]) {
      const r = run([down(clean(1, 1)), { type: "move", target, x: 40, y: 0 }, { type: "up", target, x: 40, y: 0 }]);
      expect(drops(r.effects)).toEqual([]);
      expect(r.effects.at(-1)).toEqual({ type: "cancelled" });
      expect(r.state).toEqual(IDLE);
    }
  });

  test("cancel (Escape, pointercancel) while dragging drops nothing", () => {
    const r = run([down(clean(1, 1)), { type: "move", target: corrupted(1, 1), x: 40, y: 0 }, { type: "cancel" }, { type: "up", target: corrupted(1, 1), x: 40, y: 0 }]);
    expect(drops(r.effects)).toEqual([]);
    expect(r.effects).toContainEqual({ type: "cancelled" });
    expect(r.state).toEqual(IDLE);
  });

  test("a click selects the cell; clicking the only selected cell again clears it", () => {
    const first = run([down(clean(2, 0), 5, 5), { type: "up", target: clean(2, 0), x: 5, y: 5 }]);
    const sel = { r0: 2, c0: 0, r1: 2, c1: 0 };
    expect(first.effects.at(-1)).toEqual({ type: "select", rect: sel, anchor: { row: 2, col: 0 } });
    const again = run([down(clean(2, 0), 5, 5, { selection: sel, anchor: { row: 2, col: 0 } }), { type: "up", target: clean(2, 0), x: 5, y: 5 }]);
    expect(again.effects).toEqual([{ type: "select", rect: null, anchor: null }]);
  });

  test("shift + drag on the clean grid selects a rectangle (rubber band)", () => {
    const r = run([
      down(clean(0, 1), 0, 0, { shift: true }),
      { type: "move", target: clean(1, 2), x: 30, y: 30 },
      { type: "move", target: clean(2, 3), x: 60, y: 60 },
      { type: "move", target: corrupted(0, 0), x: 400, y: 60 }, // leaving the grid keeps the rectangle
      { type: "up", target: corrupted(0, 0), x: 400, y: 60 },
    ]);
    expect(drops(r.effects)).toEqual([]);
    const selects = r.effects.filter((e) => e.type === "select") as Array<Extract<Effect, { type: "select" }>>;
    expect(selects.at(-1)!.rect).toEqual({ r0: 0, c0: 1, r1: 2, c1: 3 });
    expect(selects.at(-1)!.anchor).toEqual({ row: 0, col: 1 });
  });

  test("shift + click extends the selection from its anchor", () => {
    const r = run([down(clean(3, 0), 0, 0, { shift: true, selection: { r0: 1, c0: 2, r1: 1, c1: 2 }, anchor: { row: 1, col: 2 } })]);
    expect(r.effects).toEqual([{ type: "select", rect: { r0: 1, c0: 0, r1: 3, c1: 2 }, anchor: { row: 1, col: 2 } }]);
  });

  test("pressing inside a selection carries the whole rectangle", () => {
    const selection: Rect = { r0: 0, c0: 1, r1: 2, c1: 3 };
    const r = run([
      down(clean(1, 2), 0, 0, { selection, anchor: { row: 0, col: 1 } }),
      { type: "move", target: corrupted(1, 2), x: 80, y: 0 },
      { type: "up", target: corrupted(1, 2), x: 80, y: 0 },
    ]);
    expect(r.effects.filter((e) => e.type === "select")).toEqual([]); // the selection is kept
    expect(drops(r.effects)).toEqual([{ type: "drop", rect: selection, target: "corrupted" }]);
  });

  test("pressing outside any cell, or on the corrupted grid, starts nothing", () => {
    expect(step(IDLE, down({ kind: "clean", cell: null })).state).toEqual(IDLE);
    expect(step(IDLE, down(corrupted(0, 0))).state).toEqual(IDLE);
    expect(step(IDLE, { type: "up", target: corrupted(0, 0), x: 0, y: 0 })).toEqual({ state: IDLE, effects: [] });
  });

  test("rect helpers", () => {
    expect(rectOf({ row: 3, col: 1 }, { row: 0, col: 4 })).toEqual({ r0: 0, c0: 1, r1: 3, c1: 4 });
    expect(contains({ r0: 0, c0: 1, r1: 3, c1: 4 }, { row: 3, col: 4 })).toBe(true);
    expect(contains({ r0: 0, c0: 1, r1: 3, c1: 4 }, { row: 3, col: 5 })).toBe(false);
    expect(contains(null, { row: 0, col: 0 })).toBe(false);
  });
});

describe("keyboard alternative", () => {
  test("arrows move and clamp, Shift extends from the anchor, Home/End jump", () => {
    expect(gridKey("ArrowRight", false, null, null, 3, 5)).toEqual({ type: "select", rect: { r0: 0, c0: 0, r1: 0, c1: 0 }, anchor: { row: 0, col: 0 }, cursor: { row: 0, col: 0 } });
    expect(gridKey("ArrowDown", false, { row: 2, col: 1 }, null, 3, 5)).toMatchObject({ cursor: { row: 2, col: 1 } });
    expect(gridKey("ArrowLeft", false, { row: 1, col: 1 }, null, 3, 5)).toMatchObject({ rect: { r0: 1, c0: 0, r1: 1, c1: 0 } });
    expect(gridKey("ArrowRight", true, { row: 1, col: 1 }, { row: 0, col: 0 }, 3, 5)).toEqual({
      type: "select",
      rect: { r0: 0, c0: 0, r1: 1, c1: 2 },
      anchor: { row: 0, col: 0 },
      cursor: { row: 1, col: 2 },
    });
    expect(gridKey("End", false, { row: 1, col: 1 }, null, 3, 5)).toMatchObject({ cursor: { row: 1, col: 4 } });
    expect(gridKey("Home", true, { row: 1, col: 3 }, { row: 1, col: 3 }, 3, 5)).toMatchObject({ rect: { r0: 1, c0: 0, r1: 1, c1: 3 } });
  });

  test("Enter patches, a ablates, Escape clears, other keys do nothing", () => {
    expect(gridKey("Enter", false, null, null, 3, 5)).toEqual({ type: "patch" });
    expect(gridKey("a", false, null, null, 3, 5)).toEqual({ type: "ablate" });
    expect(gridKey("Escape", false, null, null, 3, 5)).toEqual({ type: "clear" });
    expect(gridKey("x", false, { row: 0, col: 0 }, null, 3, 5)).toBeNull();
    expect(gridKey("ArrowUp", false, null, null, 0, 0)).toBeNull();
  });
});
