/**
 * Pointer plumbing for the drag state machine: a press on the clean grid starts a drag;
 * until release, window-level pointer moves/ups (and Escape, pointercancel) are hit-tested
 * against the grids and the ablate target and fed to `step`. Listeners live only while a
 * drag is in progress.
 */
import type { Cell } from "../shared/grid";
import { IDLE, step, type DragInput, type DragState, type Effect, type Target } from "./drag";
import type { Rect } from "./rect";

export interface DragHost {
  /** What is under client point (x, y). */
  hit(x: number, y: number): Target;
  /** The current selection and its anchor (the start of a Shift-extension). */
  selection(): { rect: Rect | null; anchor: Cell | null };
  /** Apply a step's effects; `state` is the machine's new state. */
  apply(effects: Effect[], state: DragState, x: number, y: number): void;
}

export class PointerDrag {
  state: DragState = IDLE;
  private stop: (() => void) | null = null;

  constructor(private readonly host: DragHost) {}

  /** Feed one input (also used directly by tests and keyboard cancel). */
  feed(input: DragInput, x = 0, y = 0): Effect[] {
    const { state, effects } = step(this.state, input);
    this.state = state;
    if (state.phase === "idle") this.detach();
    this.host.apply(effects, state, x, y);
    return effects;
  }

  /** `pointerdown` on the clean grid. */
  down(ev: PointerEvent, focus: () => void): void {
    if (ev.button !== 0 || this.state.phase !== "idle") return;
    ev.preventDefault(); // no text selection; focus is given explicitly
    focus();
    const { rect, anchor } = this.host.selection();
    const x = ev.clientX;
    const y = ev.clientY;
    this.feed({ type: "down", target: this.host.hit(x, y), x, y, shift: ev.shiftKey, selection: rect, anchor }, x, y);
    if (this.state.phase !== "idle") this.attach();
  }

  private attach(): void {
    const move = (e: PointerEvent) => this.feed({ type: "move", target: this.host.hit(e.clientX, e.clientY), x: e.clientX, y: e.clientY }, e.clientX, e.clientY);
    const up = (e: PointerEvent) => this.feed({ type: "up", target: this.host.hit(e.clientX, e.clientY), x: e.clientX, y: e.clientY }, e.clientX, e.clientY);
    const cancel = () => this.feed({ type: "cancel" });
    const key = (e: KeyboardEvent) => {
      if (e.key !== "Escape") return;
      e.preventDefault();
      e.stopPropagation();
      cancel();
    };
    window.addEventListener("pointermove", move);
    window.addEventListener("pointerup", up);
    window.addEventListener("pointercancel", cancel);
    window.addEventListener("keydown", key, true);
    // Released outside the browser window (no pointerup arrives): the drag is cancelled.
    window.addEventListener("blur", cancel);
    this.stop = () => {
      window.removeEventListener("blur", cancel);
      window.removeEventListener("pointermove", move);
      window.removeEventListener("pointerup", up);
      window.removeEventListener("pointercancel", cancel);
      window.removeEventListener("keydown", key, true);
    };
  }

  /** Remove the drag's window listeners (idempotent; also on dispose). */
  detach(): void {
    this.stop?.();
    this.stop = null;
  }
}
