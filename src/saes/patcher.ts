/**
 * The patcher's SAE feature panel (lenswidget/widgets/patcher/features.py): a grid of the
 * picked SAE's top features by attribution (rows `F<i>`) x positions, coloured by the
 * estimated (or, after an exact sweep, exact) metric of patching that cell alone; the
 * feature chips; the sweep buttons.
 *
 * Dragging grid cells onto the corrupted run's grid sends `add_feature_patch` (their clean
 * activations patched in), onto the ablate target the same with the ablation mode; a click
 * selects, Shift extends (the patcher's drag state machine, with this grid as its source);
 * on the focused grid, arrows (Shift extends), Enter patches and `a` ablates the selection.
 *
 * Loaded at run time (src/saes/index.ts): `patcher(model, frame)` mounts the panel after the
 * patcher's activation chips and finds the drop targets by their test ids (src/DOM.md).
 */
import { makeScale, type ColorScale } from "../shared/colors";
import { el } from "../shared/dom";
import type { Disposer } from "../shared/events";
import { formatValue } from "../shared/format";
import { GridCanvas, type Cell } from "../shared/grid";
import { Legend } from "../shared/legend";
import { decodeOrEmpty, EMPTY, type Tensor } from "../shared/tensor";
import { getNumber, getString, getStrings } from "../shared/traits";
import type { WidgetModel } from "../shared/types";
import { visibleToken } from "../shared/tokens";
import { injectStyleOnce } from "../shared/styles";
import { ChipList } from "../patcher/chips";
import type { DragState, Effect, Target } from "../patcher/drag";
import { fillCells, outlineRect } from "../patcher/grids";
import { gridKey } from "../patcher/keyboard";
import { PointerDrag } from "../patcher/pointer";
import { rectKey, type Rect } from "../patcher/rect";
import type { Chip } from "../patcher/state";
import type { Frame } from "../shared/frame";

export interface FeatureHost {
  corrupted(): HTMLElement;
  ablate(): HTMLElement;
  ablation(): string;
  send(message: Record<string, unknown>): void;
  setTrait(key: string, value: unknown): void;
  tooltip(lines: string[] | null, x?: number, y?: number): void;
  colors(): { fg: string; accent: string };
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v && typeof v === "object" && !Array.isArray(v) ? (v as Obj) : {});

function inside(node: Element, x: number, y: number): boolean {
  const r = node.getBoundingClientRect();
  return x >= r.left && x < r.right && y >= r.top && y < r.bottom;
}

/** `color` (`#rrggbb` or `rgb(...)`) with opacity `alpha`; anything else is returned as is. */
function translucent(color: string, alpha: number): string {
  const hex = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(color.trim());
  const rgb = hex ? hex.slice(1).map((h) => parseInt(h, 16)) : /^rgb\((\d+),\s*(\d+),\s*(\d+)\)$/.exec(color.trim())?.slice(1).map(Number);
  return rgb ? `rgba(${rgb.join(", ")}, ${alpha})` : color;
}

/** The `add_feature_patch` message for a rectangle of the grid (rows index `features`). */
export function featureMessage(hook: string, features: readonly number[], rect: Rect, mode: string): Obj {
  return { type: "add_feature_patch", hook, features: features.slice(rect.r0, rect.r1 + 1), positions: [rect.c0, rect.c1], mode };
}

export class FeatureGridPanel {
  readonly node: HTMLDivElement;
  readonly grid: GridCanvas;
  readonly drag: PointerDrag;
  private readonly select: HTMLSelectElement;
  private readonly rowLabels: HTMLDivElement;
  private readonly colLabels: HTMLDivElement;
  private readonly caption: HTMLDivElement;
  private readonly legend = new Legend(80);
  private readonly chips: ChipList;
  private readonly ghost: HTMLDivElement;
  private selection: Rect | null = null;
  private anchor: Cell | null = null;
  private cursor: Cell | null = null;
  private values: Float32Array = new Float32Array(0);
  private scale: ColorScale = makeScale("diverging", -1, 1);

  constructor(private readonly model: WidgetModel, d: Disposer, private readonly host: FeatureHost) {
    injectStyleOnce("lenswidget-feature-grid", ".lw-patch-canvas[data-feature-drop=true]{outline:2px dashed var(--jp-brand-color1,#1976d2)}");
    const canvas = el("canvas", { testid: "lw-feature-grid", className: "lw-canvas lw-patch-canvas", attrs: { tabindex: "0", role: "grid", "aria-label": "SAE features by position" } });
    this.grid = new GridCanvas(canvas);
    this.select = el("select", { testid: "lw-feature-sae", attrs: { "aria-label": "SAE" } });
    this.rowLabels = el("div", { className: "lw-row-labels" });
    this.colLabels = el("div", { className: "lw-col-labels" });
    this.caption = el("div", { testid: "lw-feature-caption", className: "lw-muted" });
    this.ghost = el("div", { className: "lw-drag-ghost" });
    this.ghost.hidden = true;
    const send = (m: Obj) => host.send(m);
    this.chips = new ChipList(d, { remove: (id) => send({ type: "remove_feature_patch", id }), toggle: (id, enabled) => send({ type: "toggle_feature_patch", id, enabled }) }, () => send({ type: "clear_feature_patches" }));
    this.chips.node.dataset.testid = "lw-feature-chips";
    const clear = this.chips.node.querySelector("[data-testid='lw-clear-patches']") as HTMLElement | null;
    if (clear) clear.dataset.testid = "lw-clear-feature-patches";
    const button = (testid: string, text: string, kind: string) => {
      const b = el("button", { testid, className: "lw-button", text, attrs: { type: "button" } });
      d.listen(b, "click", () => send({ type: "feature_sweep", kind }));
      return b;
    };
    this.node = el("div", {
      testid: "lw-features",
      className: "lw-patch-panel",
      children: [
        el("div", { className: "lw-controls-row", children: [el("span", { className: "lw-patch-panel-title", text: "SAE features" }), this.select, button("lw-feature-exact", "Exact sweep", "exact"), button("lw-feature-estimate", "Estimate", "attribution")] }),
        el("div", { className: "lw-controls-row", children: [el("div", { className: "lw-grid", children: [el("div"), this.colLabels, this.rowLabels, canvas] }), this.legend.node] }),
        this.caption,
        this.chips.node,
        this.ghost,
      ],
    });
    this.drag = new PointerDrag({
      hit: (x, y) => this.hit(x, y),
      selection: () => ({ rect: this.selection, anchor: this.anchor }),
      apply: (effects, state, x, y) => this.apply(effects, state, x, y),
    });
    canvas.setAttribute("data-lm-suppress-shortcuts", "true");
    d.listen(canvas, "pointerdown", (ev) => this.drag.down(ev, () => canvas.focus({ preventScroll: true })));
    d.listen(canvas, "mousemove", (ev) => this.hover(ev));
    d.listen(canvas, "keydown", (ev) => this.onKey(ev));
    d.listen(canvas, "mouseleave", () => host.tooltip(null));
    d.listen(this.select, "change", () => host.setTrait("feature_sae", this.select.value));
    d.add(() => this.drag.detach());
    for (const k of ["saes", "feature_sae", "feature_grid", "clean_str_tokens", "cell_size", "metric_corrupted", "metric_clean"]) d.onModel(model, `change:${k}`, () => this.render());
    d.onModel(model, "change:feature_patches", () => this.renderChips());
    this.render();
    this.renderChips();
  }

  get features(): number[] {
    const f = obj(this.model.get("feature_grid")).features;
    return Array.isArray(f) ? f.filter((x): x is number => Number.isInteger(x)) : [];
  }

  get hook(): string {
    return String(obj(this.model.get("feature_grid")).hook ?? "");
  }

  hit(x: number, y: number): Target {
    if (inside(this.host.ablate(), x, y)) return { kind: "ablate" };
    if (inside(this.grid.canvas, x, y)) return { kind: "clean", cell: this.grid.cellAt({ clientX: x, clientY: y } as MouseEvent) };
    if (inside(this.host.corrupted(), x, y)) return { kind: "corrupted", cell: null };
    return { kind: "none" };
  }

  private apply(effects: Effect[], state: DragState, x: number, y: number): void {
    let over: Target = { kind: "none" };
    for (const e of effects) {
      if (e.type === "select") this.choose(e.rect, e.anchor);
      else if (e.type === "hover") over = e.over;
      else if (e.type === "drop") {
        this.choose(e.rect, { row: e.rect.r0, col: e.rect.c0 });
        this.patch(e.target === "ablate" ? this.host.ablation() : "clean");
      }
    }
    const dragging = state.phase === "dragging";
    this.node.dataset.drag = state.phase;
    this.host.corrupted().dataset.featureDrop = String(dragging && over.kind === "corrupted");
    this.host.ablate().dataset.over = String(dragging && over.kind === "ablate");
    this.ghost.hidden = !dragging;
    if (dragging) {
      const r = state.payload;
      this.ghost.textContent = `${this.features.slice(r.r0, r.r1 + 1).map((f) => `F${f}`).join(",")} · pos ${r.c0}${r.c1 > r.c0 ? `–${r.c1}` : ""}${over.kind === "ablate" ? ` → ${this.host.ablation()} ablate` : ""}`;
      this.ghost.style.left = `${x + 14}px`;
      this.ghost.style.top = `${y + 10}px`;
    }
    this.paint();
  }

  private choose(rect: Rect | null, anchor: Cell | null, cursor: Cell | null = null): void {
    this.selection = rect;
    this.anchor = rect ? anchor ?? { row: rect.r0, col: rect.c0 } : null;
    this.cursor = rect ? cursor ?? { row: rect.r1, col: rect.c1 } : null;
  }

  /** Patch (or ablate) the selected cells into the corrupted run. */
  patch(mode: string): void {
    if (this.selection && this.hook) this.host.send(featureMessage(this.hook, this.features, this.selection, mode));
  }

  /** Keyboard alternative to dragging (the activation grid's keys): arrows, Shift, Enter, `a`, Escape. */
  private onKey(ev: KeyboardEvent): void {
    const g = this.grid.geometry;
    const action = gridKey(ev.key, ev.shiftKey, this.cursor, this.anchor, g.rows, g.cols);
    if (!action || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    ev.preventDefault();
    if (action.type === "select") this.choose(action.rect, action.anchor, action.cursor);
    else if (action.type === "patch") this.patch("clean");
    else if (action.type === "ablate") this.patch(this.host.ablation());
    else this.choose(null, null);
    this.paint();
  }

  private hover(ev: MouseEvent): void {
    const cell = this.drag.state.phase === "idle" ? this.grid.cellAt(ev) : null;
    if (!cell) return this.host.tooltip(null);
    const tok = getStrings(this.model, "clean_str_tokens")[cell.col] ?? "";
    const kind = String(obj(this.model.get("feature_grid")).kind ?? "");
    const v = this.values[cell.row * this.grid.geometry.cols + cell.col] ?? NaN;
    this.host.tooltip([`F${this.features[cell.row] ?? "?"} · ${cell.col}: ${visibleToken(tok)}`, `${kind === "exact" ? "exact" : "estimate"}: ${formatValue(v)}`], ev.clientX, ev.clientY);
  }

  render(): void {
    const saes = Array.isArray(this.model.get("saes")) ? (this.model.get("saes") as unknown[]).map(obj) : [];
    this.node.hidden = saes.length === 0;
    if (!saes.length) return;
    const current = getString(this.model, "feature_sae");
    if (this.select.options.length !== saes.length) {
      this.select.replaceChildren(...saes.map((s) => el("option", { text: String(s.label), attrs: { value: String(s.hook) } })));
    }
    this.select.value = current;
    const g = obj(this.model.get("feature_grid"));
    let t: Tensor = EMPTY;
    try {
      t = decodeOrEmpty(g);
    } catch {
      /* malformed: an empty grid */
    }
    const features = this.features;
    const tokens = getStrings(this.model, "clean_str_tokens");
    const rows = t.shape.length === 2 ? t.shape[0]! : 0;
    const cols = t.shape.length === 2 ? t.shape[1]! : 0;
    const cell = Math.max(6, Math.min(48, Number(this.model.get("cell_size")) || 16));
    this.values = t.data;
    this.grid.setGeometry({ rows, cols, cellW: cell, cellH: cell });
    const base = getNumber(this.model, "metric_corrupted") ?? 0;
    let bound = Math.abs((getNumber(this.model, "metric_clean") ?? 1) - base);
    for (const v of t.data) if (Number.isFinite(v)) bound = Math.max(bound, Math.abs(v - base));
    this.scale = makeScale("diverging", base - (bound || 1), base + (bound || 1));
    this.grid.setValues(t.data, this.scale);
    this.legend.update(this.scale);
    this.grid.canvas.dataset.kind = String(g.kind ?? "");
    this.grid.canvas.dataset.features = features.join(",");
    this.caption.textContent =
      typeof g.note === "string"
        ? g.note
        : `${String(g.kind) === "exact" ? "exact" : "attribution estimate of the"} metric after patching each feature's clean activation at one position (top ${rows} features of ${String(g.label ?? "")}); drag cells onto the corrupted grid to patch, onto the ablate target to ablate`;
    const px = `height:${cell}px;line-height:${cell}px`;
    this.rowLabels.replaceChildren(...features.map((f, r) => el("div", { className: "lw-row-label", text: `F${f}`, attrs: { "data-index": String(r), style: px } })));
    this.colLabels.replaceChildren(
      ...Array.from({ length: cols }, (_, c) => el("div", { className: "lw-col-label", text: visibleToken(tokens[c] ?? String(c)), attrs: { "data-index": String(c), style: `width:${cell}px` } })),
    );
    if (this.selection && (this.selection.r1 >= rows || this.selection.c1 >= cols)) this.choose(null, null);
    this.paint();
  }

  private paint(): void {
    const { fg, accent } = this.host.colors();
    this.grid.canvas.dataset.selection = rectKey(this.selection);
    const overlays = [fillCells(this.patchedCells(), translucent(accent, 0.5))];
    if (this.selection) overlays.push(outlineRect(this.selection, fg, 2));
    const c = this.cursor;
    if (c && document.activeElement === this.grid.canvas) overlays.push(outlineRect({ r0: c.row, c0: c.col, r1: c.row, c1: c.col }, accent, 1));
    this.grid.paint(overlays);
  }

  /** Grid cells covered by the enabled feature chips of the shown SAE. */
  patchedCells(): Array<[number, number]> {
    const rows = new Map(this.features.map((f, r) => [f, r]));
    const cols = this.grid.geometry.cols;
    const out: Array<[number, number]> = [];
    const v = this.model.get("feature_patches");
    for (const c of Array.isArray(v) ? v.map(obj) : []) {
      if (c.enabled === false || c.hook !== this.hook || !Array.isArray(c.features)) continue;
      const pos = Array.isArray(c.positions) ? (c.positions as number[]) : Array.from({ length: cols }, (_, i) => i);
      for (const f of c.features as number[]) {
        const r = rows.get(f);
        if (r !== undefined) for (const p of pos) if (p < cols) out.push([r, p]);
      }
    }
    this.grid.canvas.dataset.patchedCells = String(out.length);
    return out;
  }

  private renderChips(): void {
    const v = this.model.get("feature_patches");
    const chips: Chip[] = (Array.isArray(v) ? v.map(obj) : [])
      .filter((c) => Number.isInteger(c.id))
      .map((c) => ({ id: c.id as number, act: "feature", layers: [], positions: null, heads: null, mode: String(c.mode ?? "clean"), enabled: c.enabled !== false, label: String(c.label ?? "") }));
    this.chips.render(chips);
    this.paint();
  }
}

/** Mount the panel into a patcher's frame (after the activation chips); returns its disposer. */
export function patcher(model: WidgetModel, frame: Frame): () => void {
  const find = (id: string) => frame.body.querySelector(`[data-testid="${id}"]`) as HTMLElement;
  const panel = new FeatureGridPanel(model, frame.disposer, {
    corrupted: () => find("lw-corrupted-grid"),
    ablate: () => find("lw-ablate-target"),
    ablation: () => (getString(model, "ablation") === "mean" ? "mean" : "zero"),
    send: (m) => frame.send(m),
    setTrait: (k, v) => frame.update({ [k]: v }),
    tooltip: (lines, x = 0, y = 0) => (lines ? frame.tooltip.show(lines, x, y) : frame.tooltip.hide()),
    colors: () => ({ fg: frame.theme.foreground, accent: frame.theme.accent }),
  });
  const chips = find("lw-chips") ?? frame.body.querySelector(".lw-patch-grids");
  if (chips) chips.after(panel.node);
  else frame.body.append(panel.node);
  return () => panel.node.remove();
}
