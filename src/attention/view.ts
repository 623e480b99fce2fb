/**
 * Attention inspector view: layer selector and view options, prompt box, the head atlas,
 * the big pattern (zoom, pan, virtualised labels), token strip, legend, export.
 * DOM contract: src/DOM.md.
 *
 * Patterns stay as the byte codes the kernel sent (see `shared/codes.ts`); every redraw
 * maps codes through a 256-entry colour table, and each kind of change redraws only its
 * part: a prompt edit repaints the atlas canvas and the visible window and updates the
 * token strip in place; hover touches the overlay; locking and selecting flip attributes.
 */
import { DEFAULT_OPTIONS, tableBytes, codeTable, headScale, maxCode, type ViewOptions } from "../shared/codeColors";
import { decodeCodesOrEmpty, EMPTY_CODES, type Codes } from "../shared/codes";
import { patternScale, type ColorScale } from "../shared/colors";
import { el } from "../shared/dom";
import { exportPng, exportSvg } from "../shared/download";
import type { FigureSpec } from "../shared/figure";
import { formatValue } from "../shared/format";
import { Frame } from "../shared/frame";
import { Legend } from "../shared/legend";
import { PatternView } from "../shared/patternView";
import { tokenIndexOf, visibleToken } from "../shared/tokens";
import { getInt, getInts, getNumber, getString, getStrings, slug } from "../shared/traits";
import type { Cleanup, RenderProps, WidgetModel } from "../shared/types";
import { ThumbAtlas } from "./atlas";
import { Controls } from "./controls";
import { chooseDisplay, type AttnState, type HeadRef } from "./display";
import { TokenStrip } from "./strip";
import { injectAttentionStyles } from "./styles";

const TOKEN_TESTIDS = ["lw-token", "lw-dest-label", "lw-src-label"];

export class AttentionView {
  readonly frame: Frame;
  readonly controls = new Controls();
  readonly atlas: ThumbAtlas;
  readonly pattern: PatternView;
  readonly strip = new TokenStrip();
  private readonly legend = new Legend();
  private readonly note: HTMLDivElement;
  private thumbCodes: Codes = EMPTY_CODES;
  private patternCodes: Codes = EMPTY_CODES;
  private versions = { thumbs: 0, pattern: 0 };
  private patternLayer: number | null = null;
  private preview: HeadRef | null = null;
  private held = false;
  private hoverToken: number | null = null;
  private pinned: number | null = null;
  private shownLayer: number | null = null;
  private displayKey = "";

  constructor(private readonly model: WidgetModel, host: HTMLElement) {
    const t0 = typeof performance === "undefined" ? 0 : performance.now();
    injectAttentionStyles();
    this.frame = new Frame(model, host, "attention");
    this.pattern = new PatternView(() => ({
      accent: this.frame.theme.accent,
      fg: this.frame.theme.foreground,
      dim: this.frame.theme.dark ? "rgba(0, 0, 0, 0.55)" : "rgba(255, 255, 255, 0.6)",
    }));
    this.atlas = new ThumbAtlas({
      hover: (ref) => this.setPreview(ref),
      toggle: (ref) => this.toggleLock(ref),
      active: (ref) => this.setPreview(ref),
    });
    this.note = el("div", { testid: "lw-note", className: "lw-note", attrs: { role: "status" } });
    this.frame.body.append(
      this.controls.node,
      this.note,
      this.atlas.node,
      el("div", { className: "lw-attn-main", children: [this.pattern.node, this.legend.node] }),
      this.strip.node,
    );
    this.frame.button("lw-export-png", "PNG", () => exportPng(this.figure(), `${this.filename()}.png`));
    this.frame.button("lw-export-svg", "SVG", () => exportSvg(this.figure(), `${this.filename()}.svg`));
    this.wire();
    this.loadThumbs();
    this.loadPattern();
    this.render({ layout: true, tokens: true });
    // How long the first render took (decode + atlas + pattern), for the scale benchmark.
    if (t0) this.frame.root.dataset.renderMs = (performance.now() - t0).toFixed(1);
  }

  // -- state ----------------------------------------------------------------------------
  options(): ViewOptions {
    const gamma = getNumber(this.model, "gamma");
    return {
      normalize: getString(this.model, "normalize") === "head" ? "head" : "global",
      hideSink: this.model.get("hide_sink") === true,
      gamma: gamma !== null && gamma > 0 ? gamma : DEFAULT_OPTIONS.gamma,
    };
  }

  state(): AttnState {
    return {
      layers: getInts(this.model, "layers"),
      heads: getInts(this.model, "heads"),
      headNames: getStrings(this.model, "head_names"),
      layer: getInt(this.model, "layer"),
      head: getInt(this.model, "head"),
      tokens: getStrings(this.model, "tokens"),
      thumbs: this.thumbCodes,
      pattern: this.patternCodes,
      patternLayer: this.patternLayer,
      preview: this.preview,
      options: this.options(),
    };
  }

  private decode(key: string): Codes {
    try {
      return decodeCodesOrEmpty(this.model.get(key));
    } catch (err) {
      this.frame.showError(`Could not decode ${key}: ${(err as Error).message}`);
      return EMPTY_CODES;
    }
  }

  private loadThumbs(): void {
    this.thumbCodes = this.decode("thumbs");
    this.versions.thumbs++;
    this.account();
  }

  private loadPattern(): void {
    this.patternCodes = this.decode("pattern");
    this.versions.pattern++;
    // The kernel tags the payload with its layer (the browser may already have moved on).
    const payload = this.model.get("pattern") as { layer?: unknown } | null;
    this.patternLayer = Number.isInteger(payload?.layer) ? (payload!.layer as number) : getInt(this.model, "layer");
    this.account();
  }

  /** Bytes of pattern data held (codes; colour tables apart) and received, as root attributes. */
  private account(): void {
    const d = this.frame.root.dataset;
    d.patternBytes = String(this.thumbCodes.bytes + this.patternCodes.bytes);
    d.tableBytes = String(tableBytes());
    d.payloadBytes = String(this.thumbCodes.codes.byteLength + this.patternCodes.codes.byteLength);
  }

  // -- wiring ---------------------------------------------------------------------------
  private wire(): void {
    const d = this.frame.disposer;
    const m = this.model;
    d.onModel(m, "change:thumbs", () => {
      this.loadThumbs();
      this.render({});
    });
    d.onModel(m, "change:pattern", () => {
      this.loadPattern();
      this.render({});
    });
    d.onModel(m, "change:tokens", () => this.render({ tokens: true }));
    for (const key of ["layers", "heads", "head_names"]) d.onModel(m, `change:${key}`, () => this.render({ layout: true }));
    for (const key of ["layer", "head", "prompt", "editable", "normalize", "hide_sink", "gamma"]) d.onModel(m, `change:${key}`, () => this.render({}));
    d.onModel(m, "change:note", () => this.render({}));
    this.frame.watchTheme(() => this.render({})); // colours do not depend on the theme; the overlay does

    // layer selector and view options
    d.listen(this.controls.select, "change", () => {
      const layer = Number(this.controls.select.value);
      if (Number.isInteger(layer)) this.setLayer(layer);
    });
    d.listen(this.controls.perHead, "change", () => this.setOption("normalize", this.controls.perHead.checked ? "head" : "global"));
    d.listen(this.controls.hideSink, "change", () => this.setOption("hide_sink", this.controls.hideSink.checked));
    d.listen(this.controls.gamma, "change", () => this.setOption("gamma", Number(this.controls.gamma.value)));

    // prompt: debounce, then sync `prompt` (one request); busy from the first keystroke to the reply
    d.listen(this.controls.prompt, "input", () => {
      if (!this.held) {
        this.held = true;
        this.frame.hold();
      }
      const ms = getInt(m, "debounce_ms") ?? 150;
      this.controls.debounce(ms, () => {
        this.held = false;
        this.frame.release();
        const text = this.controls.prompt.value;
        if (text !== getString(m, "prompt")) this.frame.update({ prompt: text });
      });
    });
    d.add(() => this.controls.cancel());

    // big canvas: tooltip + hover outline
    const canvas = this.pattern.canvas;
    d.listen(canvas, "mousemove", (ev) => this.onCanvasHover(ev));
    d.listen(canvas, "mouseleave", () => {
      this.pattern.setHover(null);
      this.frame.tooltip.hide();
    });

    // tokens (strip and axis labels): hover highlights, click pins, keys move
    for (const node of [this.strip.node, this.pattern.node]) {
      d.listen(node, "mouseover", (ev) => {
        const t = ev.target as HTMLElement | null;
        if (t?.dataset && TOKEN_TESTIDS.includes(t.dataset.testid ?? "")) this.setHoverToken(tokenIndexOf(t));
      });
      d.listen(node, "mouseout", (ev) => {
        const t = ev.target as HTMLElement | null;
        if (t?.dataset && TOKEN_TESTIDS.includes(t.dataset.testid ?? "")) this.setHoverToken(null);
      });
      d.listen(node, "click", (ev) => {
        const t = ev.target as HTMLElement | null;
        if (!t?.dataset || !TOKEN_TESTIDS.includes(t.dataset.testid ?? "")) return;
        const i = tokenIndexOf(t);
        this.pin(i === this.pinned ? null : i);
      });
    }
    d.listen(this.strip.node, "keydown", (ev) => {
      const n = this.strip.length;
      const at = this.strip.cursor ?? this.pinned ?? -1;
      if (ev.key === "ArrowRight" || ev.key === "ArrowDown") this.pin(Math.min(n - 1, at + 1));
      else if (ev.key === "ArrowLeft" || ev.key === "ArrowUp") this.pin(Math.max(0, at - 1));
      else if (ev.key === "Home") this.pin(0);
      else if (ev.key === "End") this.pin(n - 1);
      else if (ev.key === "Escape") this.pin(null);
      else return;
      ev.preventDefault();
    });
    this.pattern.onViewChange = () => this.frame.tooltip.hide();
  }

  // -- interaction --------------------------------------------------------------------
  setPreview(ref: HeadRef | null): void {
    if (ref?.layerIdx === this.preview?.layerIdx && ref?.headIdx === this.preview?.headIdx) return;
    this.preview = ref;
    this.render({});
  }

  /** Click (or Enter) on a thumbnail: lock it, or unlock when it is already locked. */
  toggleLock(ref: HeadRef): void {
    const s = this.state();
    const layer = s.layers[ref.layerIdx];
    const head = s.heads[ref.headIdx];
    if (layer === undefined || head === undefined) return;
    if (s.layer === layer && s.head === head) this.frame.update({ head: null });
    else this.frame.update({ layer, head });
    this.render({});
  }

  setLayer(layer: number): void {
    if (layer === getInt(this.model, "layer")) return;
    this.frame.update({ layer });
    this.render({});
  }

  private setOption(key: string, value: unknown): void {
    this.frame.update({ [key]: value });
  }

  private setHoverToken(i: number | null): void {
    this.hoverToken = i;
    this.applyHighlight();
  }

  /** Pin the highlight on token `i` (click or keyboard), or clear it. */
  pin(i: number | null): void {
    this.pinned = i !== null && i >= 0 && i < this.strip.length ? i : null;
    this.strip.setCursor(this.pinned);
    this.applyHighlight();
  }

  /** Highlight the hovered token, else the pinned one: row and column on the canvas, strip colours. */
  private applyHighlight(): void {
    const i = this.hoverToken ?? this.pinned;
    this.pattern.setHighlight(i);
    const img = this.pattern.image;
    this.strip.paint(i, i === null ? null : this.pattern.rowOf(i), img?.scale ?? patternScale());
  }

  private onCanvasHover(ev: MouseEvent): void {
    const cell = this.pattern.dragging ? null : this.pattern.cellAt(ev);
    const img = this.pattern.image;
    if (!cell || !img) {
      this.pattern.setHover(null);
      this.frame.tooltip.hide();
      return;
    }
    const tokens = getStrings(this.model, "tokens");
    this.frame.tooltip.show(
      [
        img.name,
        `${visibleToken(tokens[cell.row] ?? "")}[${cell.row}] → ${visibleToken(tokens[cell.col] ?? "")}[${cell.col}]`,
        formatValue(this.pattern.value(cell)) + (img.resolution === "thumbnail" ? " (pooled)" : ""),
      ],
      ev.clientX,
      ev.clientY,
    );
    this.pattern.setHover(cell);
  }

  // -- rendering ------------------------------------------------------------------------
  /** Re-derive the view from the model; `layout` rebuilds the atlas cells, `tokens` the strip. */
  render(parts: { layout?: boolean; tokens?: boolean }): void {
    const s = this.state();
    if (parts.layout) this.atlas.layout(s.layers, s.heads, s.headNames);
    if (parts.tokens || parts.layout) this.strip.update(s.tokens);
    this.drawAtlas(s);
    this.controls.setLayers(s.layers, s.layer);
    this.controls.setOptions(s.options);
    this.controls.setPrompt(getString(this.model, "prompt"), this.model.get("editable") === true);
    const noteText = getString(this.model, "note");
    this.note.textContent = noteText;
    this.note.hidden = !noteText;
    const layerIdx = s.layer === null ? -1 : s.layers.indexOf(s.layer);
    const lockedIdx = s.head === null ? -1 : s.heads.indexOf(s.head);
    this.atlas.mark(layerIdx, lockedIdx >= 0 && layerIdx >= 0 ? { layerIdx, headIdx: lockedIdx } : null, s.preview);
    if (s.layer !== this.shownLayer) {
      this.shownLayer = s.layer;
      this.atlas.scrollToLayer(layerIdx); // e.g. L23 chosen from a linked heatmap
    }
    const image = chooseDisplay(s);
    const key = image
      ? `${image.layer}/${image.head}/${image.resolution}/${image.codes === s.pattern.codes ? `p${this.versions.pattern}` : `t${this.versions.thumbs}`}/${JSON.stringify(s.options)}`
      : "";
    const tokensChanged = s.tokens.length !== this.pattern.n || parts.tokens === true;
    if (key !== this.displayKey || tokensChanged) {
      this.displayKey = key;
      this.pattern.show(image, s.tokens);
      this.legend.update(image?.scale ?? patternScale());
      const i = this.hoverToken ?? this.pinned;
      if (i !== null && i >= s.tokens.length) {
        this.hoverToken = null;
        this.pinned = null;
      }
      this.applyHighlight();
    } else {
      this.pattern.show(image, s.tokens, false); // mode / label only; the pixels stay
    }
    this.account();
  }

  private drawAtlas(s: AttnState): void {
    const th = s.thumbs.shape;
    if (th.length !== 4 || th[0] !== s.layers.length || th[1] !== s.heads.length) return;
    const t = th[2]!;
    const opts = s.options;
    const codes = s.thumbs;
    const block = t * t;
    const H = s.heads.length;
    this.atlas.draw({
      codes: codes.codes,
      t,
      hideSink: opts.hideSink,
      colorKey: `${JSON.stringify(opts)}/${codes.lo}/${codes.step}`,
      table: (li, hi) => {
        const offset = (li * H + hi) * block;
        return codeTable(headScale(codes, opts, maxCode(codes.codes, offset, t, opts.hideSink)), codes.lo, codes.step);
      },
    });
  }

  figure(): FigureSpec {
    const tokens = getStrings(this.model, "tokens");
    const img = this.pattern.image;
    // What is in view: the whole pattern, or the zoomed-in window.
    const [a, b] = img ? this.pattern.visibleRange() : [0, 0];
    const w = this.pattern.cellW;
    const c0 = Math.max(0, Math.floor(this.pattern.ox / w));
    const c1 = Math.min(tokens.length, Math.ceil((this.pattern.ox + this.pattern.side) / w));
    const rows = b - a;
    const cols = img ? c1 - c0 : 0;
    const values = new Float32Array(rows * cols);
    if (img) for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) values[r * cols + c] = img.value(a + r, c0 + c);
    const title = [getString(this.model, "title"), img ? img.name : ""].filter(Boolean).join(" ");
    const scale: ColorScale = img?.scale ?? patternScale();
    return {
      title,
      rows,
      cols,
      values,
      rowLabels: tokens.slice(a, b).map((t) => visibleToken(t)),
      colLabels: tokens.slice(c0, c1).map((t) => visibleToken(t)),
      scale,
      cell: Math.max(4, Math.min(24, w)),
      theme: this.frame.theme,
    };
  }

  private filename(): string {
    const img = this.pattern.image;
    return slug(`attention ${img ? img.name : ""}`, "attention");
  }

  dispose(): void {
    this.frame.disposer.dispose();
  }
}

export function render({ model, el: host }: RenderProps): Cleanup {
  const view = new AttentionView(model, host);
  return () => view.dispose();
}
