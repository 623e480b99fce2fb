/**
 * Attention inspector view: layer selector, prompt box, thumbnail grid, big pattern with
 * token labels, token strip, legend, export. DOM contract: src/DOM.md.
 */
import { patternScale, textOn, type ColorScale } from "../shared/colors";
import { el } from "../shared/dom";
import { exportPng, exportSvg } from "../shared/download";
import type { FigureSpec } from "../shared/figure";
import { formatValue } from "../shared/format";
import { Frame } from "../shared/frame";
import { Legend } from "../shared/legend";
import { decodeOrEmpty, EMPTY, type Tensor } from "../shared/tensor";
import { fillTokenStrip, tokenIndexOf, visibleToken } from "../shared/tokens";
import { getInt, getInts, getString, getStrings, slug } from "../shared/traits";
import type { Cleanup, RenderProps, WidgetModel } from "../shared/types";
import { Controls } from "./controls";
import { chooseDisplay, type AttnState, type HeadRef } from "./display";
import { PatternView } from "../shared/patternView";
import { ThumbGrid, thumbRef } from "./thumbs";

export class AttentionView {
  readonly frame: Frame;
  readonly controls = new Controls();
  readonly thumbs = new ThumbGrid();
  readonly pattern: PatternView;
  readonly strip: HTMLDivElement;
  private readonly legend = new Legend();
  private scale: ColorScale;
  private thumbTensor: Tensor = EMPTY;
  private patternTensor: Tensor = EMPTY;
  private patternLayer: number | null = null;
  private preview: HeadRef | null = null;

  constructor(private readonly model: WidgetModel, host: HTMLElement) {
    this.frame = new Frame(model, host, "attention");
    this.scale = patternScale(this.frame.theme.dark, this.frame.theme.background);
    this.pattern = new PatternView(() => ({
      accent: this.frame.theme.accent,
      fg: this.frame.theme.foreground,
      dim: this.frame.theme.dark ? "rgba(0, 0, 0, 0.55)" : "rgba(255, 255, 255, 0.6)",
    }));
    this.strip = el("div", { testid: "lw-token-strip", className: "lw-token-strip" });
    this.frame.body.append(
      this.controls.node,
      this.thumbs.node,
      el("div", { className: "lw-controls-row", children: [this.pattern.node, this.legend.node] }),
    );
    this.frame.body.append(this.strip);
    this.frame.button("lw-export-png", "PNG", () => exportPng(this.figure(), `${this.filename()}.png`));
    this.frame.button("lw-export-svg", "SVG", () => exportSvg(this.figure(), `${this.filename()}.svg`));
    this.wire();
    this.loadThumbs();
    this.loadPattern();
    this.refresh(true);
  }

  // -- state ----------------------------------------------------------------------------
  state(): AttnState {
    return {
      layers: getInts(this.model, "layers"),
      heads: getInts(this.model, "heads"),
      headNames: getStrings(this.model, "head_names"),
      layer: getInt(this.model, "layer"),
      head: getInt(this.model, "head"),
      tokens: getStrings(this.model, "tokens"),
      thumbs: this.thumbTensor,
      pattern: this.patternTensor,
      patternLayer: this.patternLayer,
      preview: this.preview,
    };
  }

  private decode(key: string): Tensor {
    try {
      return decodeOrEmpty(this.model.get(key));
    } catch (err) {
      this.frame.showError(`Could not decode ${key}: ${(err as Error).message}`);
      return EMPTY;
    }
  }

  private loadThumbs(): void {
    this.thumbTensor = this.decode("thumbs");
  }

  private loadPattern(): void {
    this.patternTensor = this.decode("pattern");
    // The kernel tags the payload with its layer (the browser may already have moved on).
    const payload = this.model.get("pattern") as { layer?: unknown } | null;
    this.patternLayer = Number.isInteger(payload?.layer) ? (payload!.layer as number) : getInt(this.model, "layer");
  }

  // -- wiring ---------------------------------------------------------------------------
  private wire(): void {
    const d = this.frame.disposer;
    const m = this.model;
    d.onModel(m, "change:thumbs", () => {
      this.loadThumbs();
      this.refresh(true);
    });
    d.onModel(m, "change:pattern", () => {
      this.loadPattern();
      this.refresh(false);
    });
    for (const key of ["tokens", "layers", "heads", "head_names"]) d.onModel(m, `change:${key}`, () => this.refresh(true));
    for (const key of ["layer", "head", "prompt", "editable"]) d.onModel(m, `change:${key}`, () => this.refresh(false));
    this.frame.watchTheme(() => {
      this.scale = patternScale(this.frame.theme.dark, this.frame.theme.background);
      this.refresh(true);
    });

    // thumbnails: hover previews, click locks / unlocks
    const grid = this.thumbs.node;
    d.listen(grid, "mouseover", (ev) => this.setPreview(thumbRef(ev.target)));
    d.listen(grid, "mouseleave", () => this.setPreview(null));
    d.listen(grid, "click", (ev) => {
      const ref = thumbRef(ev.target);
      if (ref) this.toggleLock(ref);
    });

    // layer selector
    d.listen(this.controls.select, "change", () => {
      const layer = Number(this.controls.select.value);
      if (Number.isInteger(layer)) this.setLayer(layer);
    });

    // prompt: debounce, then sync `prompt`; busy until the kernel's next revision
    d.listen(this.controls.prompt, "input", () => {
      this.frame.setBusy(true);
      const ms = getInt(m, "debounce_ms") ?? 400;
      this.controls.debounce(ms, () => {
        const text = this.controls.prompt.value;
        if (text === getString(m, "prompt")) return this.frame.setBusy(false);
        m.set("prompt", text);
        m.save_changes();
      });
    });
    d.add(() => this.controls.cancel());

    // big canvas: tooltip + hover outline
    const canvas = this.pattern.grid.canvas;
    d.listen(canvas, "mousemove", (ev) => this.onCanvasHover(ev));
    d.listen(canvas, "mouseleave", () => {
      this.pattern.hover = null;
      this.frame.tooltip.hide();
      this.pattern.paint();
    });

    // tokens (strip and axis labels): highlight attention from and to the token
    for (const node of [this.strip, this.pattern.node]) {
      d.listen(node, "mouseover", (ev) => {
        const t = ev.target as HTMLElement | null;
        if (!t?.dataset || !["lw-token", "lw-dest-label", "lw-src-label"].includes(t.dataset.testid ?? "")) return;
        this.setHighlight(tokenIndexOf(t));
      });
      d.listen(node, "mouseout", (ev) => {
        const t = ev.target as HTMLElement | null;
        if (t?.dataset && ["lw-token", "lw-dest-label", "lw-src-label"].includes(t.dataset.testid ?? "")) this.setHighlight(null);
      });
    }
  }

  // -- interaction --------------------------------------------------------------------
  setPreview(ref: HeadRef | null): void {
    if (ref?.layerIdx === this.preview?.layerIdx && ref?.headIdx === this.preview?.headIdx) return;
    this.preview = ref;
    this.refresh(false);
  }

  /** Click on a thumbnail: lock it, or unlock when it is already locked. */
  toggleLock(ref: HeadRef): void {
    const s = this.state();
    const layer = s.layers[ref.layerIdx];
    const head = s.heads[ref.headIdx];
    if (layer === undefined || head === undefined) return;
    if (s.layer === layer && s.head === head) {
      this.model.set("head", null);
    } else {
      if (s.layer !== layer) this.frame.setBusy(true); // waiting for that layer's full pattern
      this.model.set("layer", layer);
      this.model.set("head", head);
    }
    this.model.save_changes();
    this.refresh(false);
  }

  setLayer(layer: number): void {
    if (layer === getInt(this.model, "layer")) return;
    this.frame.setBusy(true);
    this.model.set("layer", layer);
    this.model.save_changes();
    this.refresh(false);
  }

  setHighlight(i: number | null): void {
    this.pattern.setHighlight(i);
    const n = getStrings(this.model, "tokens").length;
    const row = i === null ? null : this.pattern.rowOf(i, n);
    [...this.strip.children].forEach((child, j) => {
      const span = child as HTMLElement;
      span.classList.toggle("lw-hl", i === j);
      if (row) {
        const rgba = this.scale.rgba(row[j] ?? NaN);
        span.style.backgroundColor = this.scale.color(row[j] ?? NaN);
        span.style.color = textOn(rgba);
      } else {
        span.style.backgroundColor = "";
        span.style.color = "";
      }
    });
  }

  private onCanvasHover(ev: MouseEvent): void {
    const cell = this.pattern.grid.cellAt(ev);
    const disp = this.pattern.display;
    if (!cell || !disp) {
      this.pattern.hover = null;
      this.frame.tooltip.hide();
      return this.pattern.paint();
    }
    const tokens = getStrings(this.model, "tokens");
    const value = this.pattern.value(cell, tokens.length);
    this.frame.tooltip.show(
      [
        disp.name,
        `${visibleToken(tokens[cell.row] ?? "")}[${cell.row}] → ${visibleToken(tokens[cell.col] ?? "")}[${cell.col}]`,
        formatValue(value) + (disp.resolution === "thumbnail" ? " (pooled)" : ""),
      ],
      ev.clientX,
      ev.clientY,
    );
    if (this.pattern.hover?.row !== cell.row || this.pattern.hover?.col !== cell.col) {
      this.pattern.hover = cell;
      this.pattern.paint();
    }
  }

  // -- rendering ------------------------------------------------------------------------
  /** Re-derive everything from the model; `rebuild` also redraws thumbnails and tokens. */
  refresh(rebuild: boolean): void {
    const s = this.state();
    if (rebuild) {
      this.thumbs.render(s.layers, s.heads, s.headNames, s.thumbs, this.scale);
      fillTokenStrip(this.strip, s.tokens);
      this.legend.update(this.scale);
    }
    this.controls.setLayers(s.layers, s.layer);
    this.controls.setPrompt(getString(this.model, "prompt"), this.model.get("editable") === true);
    const layerIdx = s.layer === null ? -1 : s.layers.indexOf(s.layer);
    const lockedIdx = s.head === null ? -1 : s.heads.indexOf(s.head);
    this.thumbs.mark(layerIdx, lockedIdx >= 0 && layerIdx >= 0 ? { layerIdx, headIdx: lockedIdx } : null, s.preview);
    this.pattern.show(chooseDisplay(s), s.tokens, this.scale, rebuild);
    if (rebuild && this.pattern.highlight !== null) this.setHighlight(this.pattern.highlight < s.tokens.length ? this.pattern.highlight : null);
  }

  figure(): FigureSpec {
    const tokens = getStrings(this.model, "tokens");
    const labels = tokens.map((t) => visibleToken(t));
    const disp = this.pattern.display;
    const title = [getString(this.model, "title"), disp ? disp.name : ""].filter(Boolean).join(" ");
    return {
      title,
      rows: tokens.length,
      cols: tokens.length,
      values: this.pattern.full ?? new Float32Array(0),
      rowLabels: labels,
      colLabels: labels,
      scale: this.scale,
      cell: Math.max(4, this.pattern.grid.geometry.cellW),
      theme: this.frame.theme,
    };
  }

  private filename(): string {
    const disp = this.pattern.display;
    return slug(`attention ${disp ? disp.name : ""}`, "attention");
  }

  dispose(): void {
    this.frame.disposer.dispose();
  }
}


export function render({ model, el: host }: RenderProps): Cleanup {
  const view = new AttentionView(model, host);
  return () => view.dispose();
}
