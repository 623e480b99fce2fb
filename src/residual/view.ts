/**
 * Residual-stream explorer view: controls, breadcrumbs, attribution bars (or the all-heads
 * heatmap), the selected head / neuron, and the logit lens. Clicks send small messages
 * (`select`, `back`, `set_answer`, `set_prompts`) or set the browser-writable traits
 * (`sort`, `all_heads`, `prompt_index`, `view`); the kernel answers with the new vectors.
 * DOM contract: docs/residual.md.
 */
import { moveCursor } from "../shared/a11y";
import { divergingScale, patternScale, type ColorScale } from "../shared/colors";
import { el } from "../shared/dom";
import { exportPng, exportSvg } from "../shared/download";
import type { FigureSpec } from "../shared/figure";
import { formatValue } from "../shared/format";
import { Frame } from "../shared/frame";
import type { Cell } from "../shared/grid";
import { visibleToken } from "../shared/tokens";
import { getInt, getString, getStrings } from "../shared/traits";
import type { Cleanup, RenderProps, WidgetModel } from "../shared/types";
import { exportBarsPng, exportBarsSvg, type BarFigure } from "./barFigure";
import { BarChart } from "./bars";
import { Controls, MEAN } from "./controls";
import { Breadcrumbs } from "./crumbs";
import { DetailView } from "./detail";
import { HeadGrid } from "./headGrid";
import { LensView } from "./lens";
import { barOrder, readSort, type Sort } from "./order";
import { readBars, readCheck, readDetail, readHeadGrid, readLens, readLensGrid, readPath, type BarsData } from "./state";
import { injectResidualStyles } from "./styles";

const HINTS: Record<string, string> = {
  attn: "click: this layer's heads",
  mlp: "click: this layer's top neurons",
  head: "click: pattern and effect on the logits",
  neuron: "click: effect on the logits",
  bias: "the layer's output bias",
  remainder: "the other neurons and the output bias",
  embed: "",
};

export class ResidualView {
  readonly frame: Frame;
  readonly controls = new Controls();
  readonly crumbs = new Breadcrumbs();
  readonly bars = new BarChart();
  readonly heads: HeadGrid;
  readonly detail: DetailView;
  readonly lens: LensView;
  readonly check: HTMLDivElement;
  private readonly main: HTMLDivElement;
  private barsData: BarsData = { level: "components", layer: null, labels: [], kinds: [], values: new Float32Array(0) };
  private barScale: ColorScale;
  private headScale: ColorScale;

  constructor(private readonly model: WidgetModel, host: HTMLElement) {
    this.frame = new Frame(model, host, "residual");
    injectResidualStyles();
    const t = () => this.frame.theme;
    this.heads = new HeadGrid(() => ({ fg: t().foreground, muted: t().muted, accent: t().accent }));
    this.detail = new DetailView(() => ({ accent: t().accent, fg: t().foreground, dim: t().dark ? "rgba(0, 0, 0, 0.55)" : "rgba(255, 255, 255, 0.6)" }));
    this.lens = new LensView(() => ({ fg: t().foreground, font: t().monoFont }));
    this.check = el("div", { testid: "lw-res-check", className: "lw-res-check" });
    this.main = el("div", { className: "lw-res-main", children: [this.bars.node, this.heads.node, this.detail.node] });
    this.frame.body.append(this.controls.node, this.crumbs.node, this.check, this.main, this.lens.node);
    this.barScale = divergingScale(1, t().dark, t().background);
    this.headScale = this.barScale;
    this.frame.button("lw-export-png", "PNG", () => this.exportFigure("png"));
    this.frame.button("lw-export-svg", "SVG", () => this.exportFigure("svg"));
    this.wire();
    this.renderAll();
  }

  // -- reading ----------------------------------------------------------------------------
  get path(): string[] {
    return readPath(this.model);
  }

  get sort(): Sort {
    return readSort(this.model.get("sort"));
  }

  /** Run a decode; a malformed payload is reported in the banner instead of throwing. */
  private safely<T>(what: string, read: () => T, fallback: T): T {
    try {
      return read();
    } catch (err) {
      this.frame.showError(`Could not decode ${what}: ${(err as Error).message}`);
      return fallback;
    }
  }

  // -- wiring -----------------------------------------------------------------------------
  private wire(): void {
    const d = this.frame.disposer;
    const m = this.model;
    // One repaint per kernel update, of the panels whose traits changed (Frame.watch).
    const f = this.frame;
    f.watch(["prompts", "answer", "incorrect", "metric", "n_prompts", "prompt_index", "editable", "sort", "all_heads", "view"], () => this.renderControls());
    f.watch(["bars", "check", "path", "sort"], () => this.renderBars());
    f.watch(["head_grid", "all_heads", "path"], () => this.renderHeads());
    f.watch(["detail", "n_prompts"], () => this.renderDetail());
    f.watch(["lens", "lens_grid", "answer"], () => this.renderLens());
    f.watch(["view"], () => this.renderView());
    this.frame.watchTheme(() => this.renderAll());

    // bars: click opens, hover explains
    d.listen(this.bars.node, "click", (ev) => this.openBar(BarChart.rowOf(ev.target)));
    d.listen(this.bars.node, "keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") this.openBar(BarChart.rowOf(ev.target));
    });
    d.listen(this.bars.node, "mousemove", (ev) => {
      const row = BarChart.rowOf(ev.target);
      if (!row) return this.frame.tooltip.hide();
      const value = Number(row.dataset.value);
      const hint = HINTS[row.dataset.kind ?? ""] ?? "";
      this.frame.tooltip.show([row.dataset.label ?? "", formatValue(value), ...(hint ? [hint] : [])], ev.clientX, ev.clientY);
    });
    d.listen(this.bars.node, "mouseleave", () => this.frame.tooltip.hide());

    // breadcrumbs
    d.listen(this.crumbs.node, "click", (ev) => {
      const depth = Breadcrumbs.depthOf(ev.target);
      if (depth !== null && depth < this.path.length) this.send({ type: "back", depth });
    });

    // all-heads heatmap
    const hc = this.heads.grid.canvas;
    d.listen(hc, "click", (ev) => {
      const cell = this.heads.grid.cellAt(ev);
      if (!cell) return;
      this.heads.cursor = cell;
      this.openHead(cell);
    });
    d.listen(hc, "keydown", (ev) => {
      if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
      const h = this.heads;
      if ((ev.key === "Enter" || ev.key === " ") && h.cursor) {
        ev.preventDefault();
        return this.openHead(h.cursor);
      }
      if (ev.key === "Escape" && this.path.length > 1) return this.send({ type: "back", depth: 1 });
      const next = moveCursor(ev.key, h.cursor, h.rows, h.cols);
      if (!next) return;
      ev.preventDefault();
      h.cursor = next;
      const g = h.grid.geometry;
      this.frame.tooltip.showAtCell(hc, next.row, next.col, g.cellW, g.cellH, [`L${next.row}H${next.col}`, formatValue(h.value(next)), HINTS.head!]);
      h.paint();
    });
    d.listen(hc, "focus", () => {
      if (!this.heads.cursor && this.heads.rows) this.heads.cursor = this.heads.selected ?? { row: 0, col: 0 };
      this.heads.paint();
    });
    d.listen(hc, "blur", () => this.heads.paint());
    d.listen(hc, "mousemove", (ev) => {
      const cell = this.heads.grid.cellAt(ev);
      this.setHeadHover(cell);
      if (cell) this.frame.tooltip.show([`L${cell.row}H${cell.col}`, formatValue(this.heads.value(cell))], ev.clientX, ev.clientY);
      else this.frame.tooltip.hide();
    });
    d.listen(hc, "mouseleave", () => {
      this.setHeadHover(null);
      this.frame.tooltip.hide();
    });

    // logit-lens grid
    const lc = this.lens.grid.canvas;
    d.listen(lc, "mousemove", (ev) => this.onLensHover(ev));
    d.listen(lc, "keydown", (ev) => {
      const g = this.lens.grid.geometry;
      const next = ev.ctrlKey || ev.metaKey || ev.altKey ? null : moveCursor(ev.key, this.lens.hover, g.rows, g.cols);
      if (ev.key === "Escape") return this.clearLens();
      if (!next) return;
      ev.preventDefault();
      this.showLensCell(next, null);
    });
    d.listen(lc, "blur", () => this.frame.tooltip.hide());
    d.listen(lc, "mouseleave", () => this.clearLens());

    // controls
    const c = this.controls;
    d.listen(c.tabs, "click", (ev) => {
      const tab = (ev.target as HTMLElement | null)?.closest?.("[data-view]") as HTMLElement | null;
      const view = tab?.dataset.view;
      if (view && view !== getString(m, "view")) this.setTrait("view", view);
    });
    d.listen(c.promptSelect, "change", () => {
      const v = c.promptSelect.value;
      this.setTrait("prompt_index", v === MEAN ? null : Number(v));
    });
    d.listen(c.sort, "change", () => this.setTrait("sort", readSort(c.sort.value)));
    d.listen(c.allHeads, "change", () => this.setTrait("all_heads", c.allHeads.checked));
    d.listen(c.apply, "click", () => this.applyTokens());
    for (const input of [c.answer, c.incorrect]) {
      d.listen(input, "keydown", (ev) => {
        if (ev.key === "Enter") this.applyTokens();
      });
    }
    d.listen(c.run, "click", () => {
      const prompts = c.typedPrompts();
      if (prompts.length) this.send({ type: "set_prompts", prompts });
    });
  }

  // -- actions ----------------------------------------------------------------------------
  /** Send a custom message; busy until the kernel's matching reply. */
  send(message: Record<string, unknown>): void {
    this.frame.send(message);
  }

  private setTrait(key: string, value: unknown): void {
    this.frame.update({ [key]: value });
  }

  /** Click on a bar: open it, or go back one level when it is the open one. */
  openBar(row: HTMLElement | null): void {
    if (!row || row.dataset.openable !== "true") return;
    const label = row.dataset.label ?? "";
    const path = this.path;
    if (path.length && path[path.length - 1] === label) this.send({ type: "back", depth: path.length - 1 });
    else this.send({ type: "select", component: label });
  }

  applyTokens(): void {
    this.send({ type: "set_answer", answer: this.controls.answer.value, incorrect: this.controls.incorrect.value });
  }

  private setHeadHover(cell: Cell | null): void {
    if (cell?.row === this.heads.hover?.row && cell?.col === this.heads.hover?.col) return;
    this.heads.hover = cell;
    this.heads.paint();
  }

  /** Click or Enter on a head cell: open it, or go back when it is the open one. */
  private openHead(cell: Cell): void {
    const label = `L${cell.row}H${cell.col}`;
    if (this.path[this.path.length - 1] === label) this.send({ type: "back", depth: 1 });
    else this.send({ type: "select", component: label });
  }

  private onLensHover(ev: MouseEvent): void {
    const cell = this.lens.grid.cellAt(ev);
    if (!cell || !this.lens.data) return this.clearLens();
    this.showLensCell(cell, ev);
  }

  /** No lens cell outlined, no tooltip. */
  private clearLens(): void {
    this.lens.hover = null;
    this.lens.paint();
    this.frame.tooltip.hide();
  }

  /** Outline a lens cell and list its top tokens (at the pointer, or beside the cell for the keyboard). */
  private showLensCell(cell: Cell, ev: MouseEvent | null): void {
    const g = this.lens.data;
    if (!g) return;
    const tok = g.tokens[cell.row] ?? "";
    const lines = [`${g.labels[cell.col] ?? cell.col} · ${visibleToken(tok)}[${cell.row}]`];
    for (const { token, prob } of this.lens.top(cell)) lines.push(`${JSON.stringify(token)}  ${formatValue(prob)}`);
    if (ev) this.frame.tooltip.show(lines, ev.clientX, ev.clientY);
    else {
      const geo = this.lens.grid.geometry;
      this.frame.tooltip.showAtCell(this.lens.grid.canvas, cell.row, cell.col, geo.cellW, geo.cellH, lines);
    }
    if (this.lens.hover?.row !== cell.row || this.lens.hover?.col !== cell.col) {
      this.lens.hover = cell;
      this.lens.paint();
    }
  }

  // -- rendering --------------------------------------------------------------------------
  renderAll(): void {
    this.renderControls();
    this.renderBars();
    this.renderHeads();
    this.renderDetail();
    this.renderLens();
    this.renderView();
  }

  private renderControls(): void {
    const m = this.model;
    this.controls.setView(getString(m, "view", "attribution"));
    this.controls.setPrompts(getStrings(m, "prompts"), m.get("editable") === true);
    this.controls.setTokens(getStrings(m, "answer"), getStrings(m, "incorrect"), getString(m, "metric"));
    this.controls.setPromptOptions(getStrings(m, "prompts"), getInt(m, "n_prompts") ?? 1, getInt(m, "prompt_index"));
    this.controls.sort.value = this.sort;
    this.controls.allHeads.checked = m.get("all_heads") === true;
  }

  renderBars(): void {
    const path = this.path;
    this.barsData = this.safely("bars", () => readBars(this.model), this.barsData);
    const b = this.barsData;
    this.barScale = this.symmetricScale(b.values);
    const selected = path.length ? path[path.length - 1]! : null;
    this.bars.render(b, barOrder(b.values, b.kinds, this.sort), selected, this.barScale);
    this.crumbs.render(path);
    this.controls.sort.value = this.sort;
    const check = this.safely("check", () => readCheck(this.model), null);
    if (check) {
      const ok = Math.abs(check.sum - check.target) <= 1e-3 * Math.max(1, Math.abs(check.target));
      this.check.textContent = `Σ bars = ${formatValue(check.sum)} · ${check.label} = ${formatValue(check.target)}`;
      this.check.dataset.sum = String(check.sum);
      this.check.dataset.target = String(check.target);
      this.check.dataset.ok = String(ok);
      this.check.title = check.metric;
    } else {
      this.check.textContent = "";
    }
  }

  private renderHeads(): void {
    const on = this.model.get("all_heads") === true;
    const grid = on ? this.safely("head_grid", () => readHeadGrid(this.model), null) : null;
    this.heads.node.hidden = !grid;
    this.bars.node.hidden = !!grid;
    if (!grid) return;
    this.headScale = this.symmetricScale(grid.data);
    const m = /^L(\d+)H(\d+)$/.exec(this.path[1] ?? "");
    this.heads.selected = m ? { row: Number(m[1]), col: Number(m[2]) } : null;
    this.heads.render(grid, this.headScale);
  }

  /** A diverging scale over +-max|finite value| (1 when there is none). */
  private symmetricScale(values: Iterable<number>): ColorScale {
    let bound = 0;
    for (const v of values) if (Number.isFinite(v)) bound = Math.max(bound, Math.abs(v));
    const { dark, background } = this.frame.theme;
    return divergingScale(bound || 1, dark, background);
  }

  private renderDetail(): void {
    const d = this.safely("detail", () => readDetail(this.model), null);
    const { dark, background } = this.frame.theme;
    this.detail.render(d, patternScale(dark, background), getInt(this.model, "n_prompts") ?? 1);
  }

  private renderLens(): void {
    const lens = this.safely("lens", () => readLens(this.model), null);
    const answers = [...new Set(getStrings(this.model, "answer"))].map(visibleToken).join("/");
    this.lens.renderCurve(lens, answers);
    const grid = this.safely("lens_grid", () => readLensGrid(this.model), null);
    const { dark, background } = this.frame.theme;
    this.lens.renderGrid(grid, patternScale(dark, background));
    if (!this.lens.node.hidden) this.revealLens();
  }

  private renderView(): void {
    const lens = getString(this.model, "view") === "lens";
    this.lens.node.hidden = !lens;
    this.main.hidden = lens;
    this.check.hidden = lens;
    this.crumbs.node.hidden = lens;
    this.frame.root.dataset.view = lens ? "lens" : "attribution";
    this.controls.setView(lens ? "lens" : "attribution");
    if (lens) this.revealLens();
  }

  /** Once laid out, scroll the lens grid to its last layers. */
  private revealLens(): void {
    this.lens.revealLatest();
    if (typeof requestAnimationFrame === "function") requestAnimationFrame(() => this.lens.revealLatest());
  }

  // -- export -----------------------------------------------------------------------------
  private exportFigure(kind: "png" | "svg"): void {
    const title = getString(this.model, "title");
    const theme = this.frame.theme;
    const heatmap = (spec: Omit<FigureSpec, "theme">, name: string) =>
      void (kind === "png" ? exportPng({ ...spec, theme }, `${name}.png`) : exportSvg({ ...spec, theme }, `${name}.svg`));
    const g = this.lens.data;
    if (getString(this.model, "view") === "lens" && g) {
      return heatmap(
        {
          title: title || "Logit lens: top-1 probability",
          rows: g.ids.shape[0] ?? 0,
          cols: g.ids.shape[1] ?? 0,
          values: this.lens.topProbs(g),
          rowLabels: g.tokens.map(visibleToken),
          colLabels: g.labels,
          scale: patternScale(theme.dark, theme.background),
          cell: 14,
        },
        "residual-logit-lens",
      );
    }
    const h = this.heads;
    if (!h.node.hidden) {
      return heatmap(
        {
          title: title || "Direct logit attribution per head",
          rows: h.rows,
          cols: h.cols,
          values: h.values.data,
          rowLabels: Array.from({ length: h.rows }, (_, r) => `L${r}`),
          colLabels: Array.from({ length: h.cols }, (_, c) => `H${c}`),
          scale: this.headScale,
          cell: 22,
        },
        "residual-all-heads",
      );
    }
    const fig = this.barFigure();
    const name = `residual-${this.barsData.level === "components" ? "components" : `l${this.barsData.layer}-${this.barsData.level}`}`;
    if (kind === "png") exportBarsPng(fig, `${name}.png`);
    else exportBarsSvg(fig, `${name}.svg`);
  }

  barFigure(): BarFigure {
    const b = this.barsData;
    const order = barOrder(b.values, b.kinds, this.sort);
    const metric = getString(this.model, "metric") === "logit_diff" ? "logit difference" : "logit";
    const where = b.level === "components" ? "each component" : b.level === "heads" ? `layer ${b.layer}'s heads` : `layer ${b.layer}'s top neurons`;
    return {
      title: getString(this.model, "title") || `Direct ${metric} attribution of ${where}`,
      labels: order.map((i) => b.labels[i] ?? ""),
      values: order.map((i) => b.values[i] ?? NaN),
      scale: this.barScale,
      theme: this.frame.theme,
      footer: this.check.textContent ?? "",
    };
  }

  dispose(): void {
    this.frame.disposer.dispose();
  }
}

export function render({ model, el: host }: RenderProps): Cleanup {
  const view = new ResidualView(model, host);
  return () => view.dispose();
}
