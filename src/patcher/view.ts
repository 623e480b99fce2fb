/**
 * Drag-to-patch view: clean and corrupted runs as layer x position (or layer x head) grids.
 * Dragging clean cells onto the corrupted grid sends `add_patch`; onto the ablate target, an
 * ablation. Chips, metric, top tokens, sweeps and "Copy as code" mirror the kernel's traits.
 * DOM contract: docs/patcher.md. The drag logic itself is the pure state machine in drag.ts.
 */
import { divergingScale, makeScale, type ColorScale } from "../shared/colors";
import { el } from "../shared/dom";
import { formatValue } from "../shared/format";
import { Frame } from "../shared/frame";
import type { Cell, Overlay } from "../shared/grid";
import { Legend } from "../shared/legend";
import { decodeOrEmpty, EMPTY, type Tensor } from "../shared/tensor";
import { getInt, getString, getStrings } from "../shared/traits";
import type { Cleanup, RenderProps, WidgetModel } from "../shared/types";
import { ChipList } from "./chips";
import { Controls } from "./controls";
import { copyText } from "./copy";
import type { DragState, Effect, Target } from "./drag";
import { fillCells, GridPanel, outlineRect } from "./grids";
import { gridKey } from "./keyboard";
import { colName, describe, type LabelContext } from "./labels";
import { MetricPanel } from "./metric";
import { PointerDrag } from "./pointer";
import { inGrid, isSingle, rectKey, type Rect } from "./rect";
import {
  act as readAct,
  chipCells,
  gridCols,
  headPosition,
  isHeadAct,
  metric,
  patchMessage,
  progress,
  readDims,
  readPatches,
  readSweepMeta,
  readTop,
  type Dims,
} from "./state";
import { injectPatcherStyles } from "./styles";
import { SweepPanel } from "./sweep";

function inside(node: Element, x: number, y: number): boolean {
  const r = node.getBoundingClientRect();
  return x >= r.left && x < r.right && y >= r.top && y < r.bottom;
}

function rgba(hex: string, alpha: number): string {
  const m = /^rgb\((\d+),\s*(\d+),\s*(\d+)\)$/.exec(hex) ?? /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
  if (!m) return hex;
  const parse = (s: string) => (hex.startsWith("#") ? parseInt(s, 16) : Number(s));
  return `rgba(${parse(m[1]!)}, ${parse(m[2]!)}, ${parse(m[3]!)}, ${alpha})`;
}

export class PatcherView {
  readonly frame: Frame;
  readonly clean = new GridPanel("clean", "clean run");
  readonly corrupted = new GridPanel("corrupted", "corrupted run (drop here to patch)");
  private readonly ablate: HTMLDivElement;
  private readonly ablationSelect: HTMLSelectElement;
  private readonly selectionText: HTMLSpanElement;
  private readonly controls: Controls;
  private readonly chips: ChipList;
  private readonly metricPanel = new MetricPanel();
  private readonly sweepPanel: SweepPanel;
  private readonly legend = new Legend(100);
  private readonly legendCaption: HTMLDivElement;
  private readonly code: HTMLPreElement;
  private readonly copyButton: HTMLButtonElement;
  private readonly ghost: HTMLDivElement;
  private readonly notice: HTMLDivElement;

  readonly drag: PointerDrag;
  private selection: Rect | null = null;
  private anchor: Cell | null = null;
  private cursor: Cell | null = null;
  private over: Target = { kind: "none" };
  private overlayShown = true;
  private diff: Tensor = EMPTY;
  private sweepValues: Tensor = EMPTY;
  private scale: ColorScale;

  constructor(private readonly model: WidgetModel, host: HTMLElement) {
    injectPatcherStyles();
    this.frame = new Frame(model, host, "patcher");
    const f = this.frame;
    const d = f.disposer;
    this.scale = divergingScale(1, f.theme.dark);
    this.root.dataset.drag = "idle";
    this.drag = new PointerDrag({
      hit: (x, y) => this.hit(x, y),
      selection: () => ({ rect: this.selection, anchor: this.anchor }),
      apply: (effects, state, x, y) => this.applyDrag(effects, state, x, y),
    });

    this.controls = new Controls(d, {
      act: (v) => this.setTrait("act", v),
      position: (v) => this.setTrait("head_position", v),
      prompt: (i) => this.setTrait("prompt_index", i),
      applyPrompts: (clean, corrupted) => this.send({ type: "set_prompts", clean, corrupted }),
    });
    this.ablationSelect = el("select", { testid: "lw-ablation-mode", attrs: { "aria-label": "Ablation" } });
    for (const [value, text] of [["zero", "zero ablation"], ["mean", "mean ablation"]]) {
      const o = el("option", { text: text! });
      o.value = value!;
      this.ablationSelect.append(o);
    }
    d.listen(this.ablationSelect, "change", () => this.setTrait("ablation", this.ablationSelect.value));
    this.ablate = el("div", {
      testid: "lw-ablate-target",
      className: "lw-ablate-target",
      attrs: { "data-over": "false" },
      children: [el("div", { text: "Drop here to ablate" }), this.ablationSelect],
    });
    const patchButton = this.button("lw-patch-button", "Patch", "Patch the selected clean cells into the corrupted run (Enter)", () => this.patchSelection("clean"));
    const ablateButton = this.button("lw-ablate-button", "Ablate", "Ablate the selected cells (key a)", () => this.patchSelection(this.ablation));
    this.selectionText = el("span", { testid: "lw-selection", className: "lw-muted" });
    this.legendCaption = el("div", { testid: "lw-legend-caption", className: "lw-muted" });
    const side = el("div", {
      className: "lw-patch-side",
      children: [this.ablate, el("div", { className: "lw-controls-row", children: [patchButton, ablateButton] }), this.selectionText, this.legendCaption, this.legend.node],
    });
    this.chips = new ChipList(d, {
      remove: (id) => this.send({ type: "remove_patch", id }),
      toggle: (id, enabled) => this.send({ type: "toggle_patch", id, enabled }),
    }, () => this.send({ type: "clear_patches" }));
    this.sweepPanel = new SweepPanel(d, {
      exact: () => this.send({ type: "sweep", kind: "exact" }),
      estimate: () => this.send({ type: "sweep", kind: "attribution" }),
      cancel: () => this.frame.send({ type: "cancel_sweep" }),
      overlay: (shown) => {
        this.overlayShown = shown;
        this.renderGrids();
      },
    });
    this.code = el("pre", { testid: "lw-code", className: "lw-code" });
    this.copyButton = f.button("lw-copy-code", "Copy as code", () => void this.copyCode());
    this.copyButton.title = "Copy the run_with_hooks code that reproduces the active patches";
    this.ghost = el("div", { testid: "lw-drag-ghost", className: "lw-drag-ghost" });
    this.ghost.hidden = true;
    this.notice = el("div", { testid: "lw-notice", className: "lw-notice" });
    const details = el("details", { children: [el("summary", { text: "Code (run_with_hooks)" }), this.code] });
    f.body.append(
      el("div", {
        className: "lw-patch-layout",
        children: [
          this.controls.node,
          el("div", { className: "lw-patch-grids", children: [this.clean.node, this.corrupted.node, side] }),
          this.chips.node,
          this.metricPanel.node,
          this.sweepPanel.node,
          this.notice,
          details,
        ],
      }),
      this.ghost,
    );
    const canvas = this.clean.canvas;
    canvas.setAttribute("data-lm-suppress-shortcuts", "true");
    d.listen(canvas, "pointerdown", (ev) => this.drag.down(ev, () => canvas.focus({ preventScroll: true })));
    d.listen(canvas, "keydown", (ev) => this.onKey(ev));
    d.listen(canvas, "mousemove", (ev) => this.onHover(ev, "clean"));
    d.listen(this.corrupted.canvas, "mousemove", (ev) => this.onHover(ev, "corrupted"));
    for (const c of [canvas, this.corrupted.canvas]) d.listen(c, "mouseleave", () => this.frame.tooltip.hide());
    d.add(() => this.drag.detach());

    // One repaint per kernel update, of the panels whose traits changed (Frame.watch).
    const on = (keys: string[], fn: () => void) => f.watch(keys, fn);
    on(["dims", "act", "head_position", "clean_str_tokens", "corrupted_str_tokens", "token_differs", "cell_diff", "sweep", "cell_size", "acts", "act_labels", "prompt_index"], () => this.renderAll());
    on(["patches", "dims", "act", "head_position", "cell_size", "prompt_index"], () => this.renderChips());
    on(["metric_value", "metric_before", "metric_clean", "metric_corrupted", "metric_pending", "metric_name"], () => this.renderMetric());
    on(["top_clean", "top_corrupted", "top_patched"], () => this.renderTops());
    on(["sweep_state", "sweep_progress"], () => this.renderSweep());
    on(["code"], () => (this.code.textContent = getString(model, "code")));
    on(["notice"], () => this.renderNotice());
    on(["editable", "clean_prompt", "corrupted_prompt"], () => this.renderPrompts());
    on(["ablation"], () => (this.ablationSelect.value = this.ablation));
    f.watchTheme(() => this.renderGrids());
    this.code.textContent = getString(model, "code");
    this.ablationSelect.value = this.ablation;
    this.renderAll();
    this.renderChips();
    this.renderMetric();
    this.renderTops();
    this.renderSweep();
    this.renderNotice();
    this.renderPrompts();
  }

  get root(): HTMLDivElement {
    return this.frame.root;
  }

  get act(): string {
    return readAct(this.model);
  }

  get dims(): Dims {
    return readDims(this.model);
  }

  get ablation(): "zero" | "mean" {
    return getString(this.model, "ablation") === "mean" ? "mean" : "zero";
  }

  get rows(): number {
    return this.dims.nLayers;
  }

  get cols(): number {
    return gridCols(this.act, this.dims);
  }

  // -- messages ------------------------------------------------------------------------------
  private button(testid: string, text: string, title: string, fn: () => void): HTMLButtonElement {
    const b = el("button", { testid, className: "lw-button", text, attrs: { type: "button", title } });
    this.frame.disposer.listen(b, "click", fn);
    return b;
  }

  private send(msg: Record<string, unknown>): void {
    this.frame.send(msg);
  }

  private setTrait(key: string, value: unknown): void {
    this.frame.update({ [key]: value });
  }

  /** Patch (or ablate) `rect` of the shown grid, at the same cells of the corrupted run. */
  patch(rect: Rect, mode: "clean" | "zero" | "mean"): void {
    if (!inGrid(rect, this.rows, this.cols)) return;
    const position = isHeadAct(this.act) ? headPosition(this.model) : null;
    this.send(patchMessage(this.act, rect, position, mode));
  }

  private patchSelection(mode: "clean" | "zero" | "mean"): void {
    if (this.selection) this.patch(this.selection, mode);
  }

  private async copyCode(): Promise<void> {
    const ok = await copyText(getString(this.model, "code"));
    this.copyButton.dataset.copied = String(ok);
    this.copyButton.textContent = ok ? "Copied" : "Copy failed";
    setTimeout(() => (this.copyButton.textContent = "Copy as code"), 1500);
  }

  // -- dragging ----------------------------------------------------------------------------------
  /** What is under client point (x, y): the ablate target, a grid (and its cell), or nothing. */
  hit(x: number, y: number): Target {
    if (inside(this.ablate, x, y)) return { kind: "ablate" };
    for (const panel of [this.clean, this.corrupted]) {
      if (inside(panel.canvas, x, y)) {
        const cell = panel.grid.cellAt({ clientX: x, clientY: y } as MouseEvent);
        return panel.name === "clean" ? { kind: "clean", cell } : { kind: "corrupted", cell };
      }
    }
    return { kind: "none" };
  }

  /** Apply the drag machine's effects: selection, hover target, drops; then repaint. */
  private applyDrag(effects: Effect[], state: DragState, x: number, y: number): void {
    for (const e of effects) {
      if (e.type === "select") this.select(e.rect, e.anchor);
      else if (e.type === "hover") this.over = e.over;
      else if (e.type === "drop") {
        this.select(e.rect, isSingle(e.rect) ? { row: e.rect.r0, col: e.rect.c0 } : this.anchor);
        this.patch(e.rect, e.target === "ablate" ? this.ablation : "clean");
      }
    }
    if (state.phase === "idle") this.over = { kind: "none" };
    this.root.dataset.drag = state.phase;
    this.ablate.dataset.over = String(state.phase === "dragging" && this.over.kind === "ablate");
    this.ghost.hidden = state.phase !== "dragging";
    if (state.phase === "dragging") {
      this.ghost.textContent = this.describe(state.payload) + (this.over.kind === "ablate" ? ` → ${this.ablation} ablate` : "");
      // Inside the widget, relative to its root (JupyterLab's windowed cells have
      // `contain: layout paint`, which breaks position: fixed), kept within its box.
      const box = this.root.getBoundingClientRect();
      const w = this.ghost.offsetWidth;
      const left = Math.max(0, Math.min(x - box.left + 14, box.width - w - 2));
      const top = Math.max(0, Math.min(y - box.top + 10, box.height - this.ghost.offsetHeight - 2));
      this.ghost.style.left = `${left}px`;
      this.ghost.style.top = `${top}px`;
    }
    this.paint();
  }

  private select(rect: Rect | null, anchor: Cell | null): void {
    this.selection = rect;
    this.anchor = rect ? anchor ?? { row: rect.r0, col: rect.c0 } : null;
    if (rect) {
      const a = this.anchor!;
      this.cursor = isSingle(rect) ? { row: rect.r0, col: rect.c0 } : { row: a.row === rect.r0 ? rect.r1 : rect.r0, col: a.col === rect.c0 ? rect.c1 : rect.c0 };
    } else {
      this.cursor = null;
    }
    this.selectionText.textContent = rect ? `selected: ${this.describe(rect)}` : "select clean cells (click, Shift+click/drag, arrows)";
    this.clean.a11y.setSelection((r, c) => !!rect && r >= rect.r0 && r <= rect.r1 && c >= rect.c0 && c <= rect.c1);
    this.paint();
  }

  private onKey(ev: KeyboardEvent): void {
    const action = gridKey(ev.key, ev.shiftKey, this.cursor, this.anchor, this.rows, this.cols);
    if (!action || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    ev.preventDefault();
    if (action.type === "select") {
      this.select(action.rect, action.anchor);
      this.cursor = action.cursor;
      this.paint();
    } else if (action.type === "patch") this.patchSelection("clean");
    else if (action.type === "ablate") this.patchSelection(this.ablation);
    else this.select(null, null);
  }

  // -- labels and tooltips ------------------------------------------------------------------------
  private labels(): LabelContext {
    return { act: this.act, dims: this.dims, tokens: getStrings(this.model, "clean_str_tokens"), position: headPosition(this.model) };
  }

  private colName(col: number): string {
    return colName(this.labels(), col);
  }

  private describe(r: Rect): string {
    return describe(this.labels(), r);
  }

  private onHover(ev: MouseEvent, which: "clean" | "corrupted"): void {
    if (this.drag.state.phase !== "idle") return;
    const panel = which === "clean" ? this.clean : this.corrupted;
    const cell = panel.grid.cellAt(ev);
    if (!cell) return this.frame.tooltip.hide();
    const lines = [`L${cell.row} · ${this.colName(cell.col)}`];
    if (which === "clean") {
      const i = cell.row * this.cols + cell.col;
      if (this.sweepShown()) lines.push(`${readSweepMeta(this.model).kind === "attribution" ? "estimate" : "sweep"}: ${formatValue(this.sweepValues.data[i] ?? NaN)}`);
      lines.push(`|clean − corrupted| / |corrupted|: ${formatValue(this.diff.data[i] ?? NaN)}`);
    } else {
      const covering = readPatches(this.model).filter(
        (c) => c.act === this.act && chipCells(c, this.dims).some(([r, k]) => r === cell.row && k === cell.col),
      );
      lines.push(covering.length ? `patched: ${covering.map((c) => c.label + (c.enabled ? "" : " (off)")).join("; ")}` : "not patched");
    }
    this.frame.tooltip.show(lines, ev.clientX, ev.clientY);
  }

  // -- rendering ---------------------------------------------------------------------------------
  private sweepShown(): boolean {
    const meta = readSweepMeta(this.model);
    const pos = isHeadAct(this.act) ? headPosition(this.model) : null;
    return this.overlayShown && meta.act === this.act && meta.position === pos && this.sweepValues.data.length === this.rows * this.cols && this.rows * this.cols > 0;
  }

  private renderAll(): void {
    const d = this.dims;
    const act = this.act;
    const tokens = { clean: getStrings(this.model, "clean_str_tokens"), corrupted: getStrings(this.model, "corrupted_str_tokens") };
    const head = isHeadAct(act);
    const pos = headPosition(this.model);
    this.controls.setActs(getStrings(this.model, "acts"), (this.model.get("act_labels") ?? {}) as Record<string, string>, act);
    this.controls.setPositions(tokens.clean, pos, head);
    this.controls.setPrompts(d.batch, getInt(this.model, "prompt_index") ?? 0);
    this.controls.setTokens(tokens.clean, tokens.corrupted, (this.model.get("token_differs") as boolean[]) ?? [], head ? pos : null, head);
    const cell = Math.max(6, Math.min(48, getInt(this.model, "cell_size") ?? 16));
    const names = (n: number) => Array.from({ length: n }, (_, i) => this.colName(i));
    this.clean.setShape(this.rows, this.cols, cell, head ? names(this.cols) : tokens.clean, !head);
    this.corrupted.setShape(this.rows, this.cols, cell, head ? names(this.cols) : tokens.corrupted, !head);
    if (this.selection && !inGrid(this.selection, this.rows, this.cols)) this.select(null, null);
    if (!this.selection) this.select(null, null);
    this.renderGrids();
  }

  private decode(key: string): Tensor {
    try {
      const t = decodeOrEmpty(this.model.get(key));
      return t.data.length === this.rows * this.cols ? t : EMPTY;
    } catch (err) {
      this.frame.showError(`Could not decode ${key}: ${(err as Error).message}`);
      return EMPTY;
    }
  }

  private renderGrids(): void {
    const { dark, background } = this.frame.theme;
    this.diff = this.decode("cell_diff");
    this.sweepValues = this.decode("sweep");
    const shown = this.sweepShown();
    const meta = readSweepMeta(this.model);
    if (shown) {
      const c = metric(this.model, "metric_corrupted") ?? 0;
      let bound = Math.abs((metric(this.model, "metric_clean") ?? 1) - c);
      for (const v of this.sweepValues.data) if (Number.isFinite(v)) bound = Math.max(bound, Math.abs(v - c));
      const b = bound > 0 ? bound : 1;
      this.scale = makeScale("diverging", c - b, c + b, dark, background);
      this.clean.setValues(this.sweepValues.data, this.scale);
      this.legendCaption.textContent = `${meta.kind === "attribution" ? "attribution estimate" : "exact sweep"}${meta.complete ? "" : " (partial)"}: metric after patching each cell`;
    } else {
      let hi = 0;
      for (const v of this.diff.data) if (Number.isFinite(v)) hi = Math.max(hi, v);
      this.scale = makeScale("sequential", 0, hi > 0 ? hi : 1, dark, background);
      this.clean.setValues(this.diff.data, this.scale);
      this.legendCaption.textContent = "|clean − corrupted| / |corrupted| per cell";
    }
    this.clean.canvas.dataset.overlay = shown ? meta.kind || "sweep" : "diff";
    this.clean.a11y.relabel((r, c) => {
      const i = r * this.cols + c;
      const v = shown ? `${meta.kind === "attribution" ? "estimate" : "sweep"} ${formatValue(this.sweepValues.data[i] ?? NaN)}` : `difference ${formatValue(this.diff.data[i] ?? NaN)}`;
      return `L${r} · ${this.colName(c)}: ${v}`;
    });
    this.legend.update(this.scale);
    this.corrupted.setValues(new Float32Array(this.rows * this.cols), makeScale("sequential", 0, 1, dark, background));
    this.paint();
  }

  private paint(): void {
    const theme = this.frame.theme;
    const cleanOverlays: Overlay[] = [];
    if (this.selection) cleanOverlays.push(outlineRect(this.selection, theme.foreground, 2));
    if (this.cursor && document.activeElement === this.clean.canvas) {
      cleanOverlays.push(outlineRect({ r0: this.cursor.row, c0: this.cursor.col, r1: this.cursor.row, c1: this.cursor.col }, theme.accent, 1));
    }
    this.clean.canvas.dataset.selection = rectKey(this.selection);
    this.clean.a11y.setActive(this.cursor);
    this.clean.paint(cleanOverlays);

    const overlays: Overlay[] = [];
    const d = this.dims;
    let patched = 0;
    for (const chip of readPatches(this.model)) {
      if (chip.act !== this.act) continue;
      const cells = chipCells(chip, d).filter(([r, c]) => r < this.rows && c < this.cols);
      if (!chip.enabled) {
        for (const [r, c] of cells) overlays.push(outlineRect({ r0: r, c0: c, r1: r, c1: c }, theme.muted, 1, true));
        continue;
      }
      patched += cells.length;
      overlays.push(fillCells(cells, rgba(chip.mode === "clean" ? theme.accent : theme.error, 0.55)));
    }
    const ds = this.drag.state;
    const preview = ds.phase === "dragging" && this.over.kind === "corrupted" ? ds.payload : null;
    if (preview) overlays.push(outlineRect(preview, theme.accent, 2, true));
    const cd = this.corrupted.canvas.dataset;
    cd.dropPreview = rectKey(preview);
    cd.patchedCells = String(patched);
    this.corrupted.paint(overlays);
  }

  private renderChips(): void {
    const chips = readPatches(this.model);
    this.chips.render(chips);
    this.corrupted.a11y.relabel((r, c) => {
      const covering = chips.filter((chip) => chip.act === this.act && chip.enabled && chipCells(chip, this.dims).some(([a, b]) => a === r && b === c));
      return `L${r} · ${this.colName(c)}: ${covering.length ? `patched (${covering.map((chip) => chip.label).join("; ")})` : "not patched"}`;
    });
    this.paint();
  }

  private renderMetric(): void {
    this.metricPanel.update({
      name: getString(this.model, "metric_name"),
      value: metric(this.model, "metric_value"),
      before: metric(this.model, "metric_before"),
      clean: metric(this.model, "metric_clean"),
      corrupted: metric(this.model, "metric_corrupted"),
      pending: this.model.get("metric_pending") === true,
    });
  }

  private renderTops(): void {
    this.metricPanel.setTop("clean", readTop(this.model, "top_clean"));
    this.metricPanel.setTop("corrupted", readTop(this.model, "top_corrupted"));
    this.metricPanel.setTop("patched", readTop(this.model, "top_patched"));
  }

  private renderSweep(): void {
    const [done, total] = progress(this.model);
    const state = getString(this.model, "sweep_state", "idle");
    this.sweepPanel.update(state, done, total, state === "running" ? `${done}/${total}` : "");
    this.root.dataset.sweep = state;
  }

  private renderNotice(): void {
    const text = getString(this.model, "notice");
    this.notice.textContent = text;
    this.notice.hidden = !text;
  }

  private renderPrompts(): void {
    this.controls.setEditable(this.model.get("editable") === true, getString(this.model, "clean_prompt"), getString(this.model, "corrupted_prompt"));
  }

  dispose(): void {
    this.frame.disposer.dispose();
  }
}

export function render({ model, el: host }: RenderProps): Cleanup {
  const view = new PatcherView(model, host);
  return () => view.dispose();
}
