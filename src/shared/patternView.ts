/**
 * The big dest x src attention pattern (rows = destination/query, columns = source/key),
 * used by the attention inspector (the residual explorer draws a still one: residual/pattern.ts).
 *
 * Built for thousands of tokens:
 * - a fixed-size viewport (at most 560 CSS px) with zoom (Ctrl/Cmd + wheel, the +/- buttons
 *   or keys) and pan (drag, wheel when zoomed, arrow keys); only the visible window is
 *   rasterised, straight from the byte codes (see `raster.ts`);
 * - hover and highlight live on an overlay canvas and repaint only the cells they touch;
 * - token labels are virtualised: only the visible ones exist, and only when a cell is
 *   big enough to read them.
 *
 * DOM contract (src/DOM.md): the canvas carries the grid geometry (`data-rows`, `data-cols`,
 * `data-cell-width`, `data-cell-height`) plus `data-zoom`, `data-offset-x`, `data-offset-y`:
 * cell (r, c) is centred at `x = (c + .5) * cellWidth - offsetX`, `y = (r + .5) * cellHeight - offsetY`.
 */
import type { ColorScale } from "./colors";
import { el, localPoint } from "./dom";
import { injectPatternStyles } from "./patternStyles";
import { rasterWindow, type RasterSource } from "./raster";
import { visibleToken } from "./tokens";

/** One head's pattern as the view draws it. */
export interface PatternImage extends RasterSource {
  layer: number;
  head: number;
  name: string;
  mode: "locked" | "preview" | "default";
  resolution: "full" | "thumbnail";
  /** The value at (row, col) positions (exact, not normalised). */
  value(row: number, col: number): number;
  /** Colours of values (legend, token backgrounds). */
  scale: ColorScale;
}

export interface Cell {
  row: number;
  col: number;
}

export interface PatternColors {
  accent: string;
  dim: string;
  fg: string;
}

/** Largest side of the viewport, CSS px. */
export const VIEWPORT = 560;
/** Cells narrower than this (CSS px) get no token labels. */
export const LABEL_MIN_CELL = 7;
const MAX_CELL = 48;

/** CSS px per cell at zoom 1: integer sizes up to 24 px while n <= 280, else the viewport / n. */
export function baseCell(n: number): number {
  const whole = Math.floor(VIEWPORT / Math.max(1, n));
  return whole >= 2 ? Math.min(24, whole) : VIEWPORT / Math.max(1, n);
}

export class PatternView {
  readonly node: HTMLDivElement;
  readonly canvas: HTMLCanvasElement;
  readonly headLabel: HTMLDivElement;
  private readonly overlay: HTMLCanvasElement;
  private readonly stage: HTMLDivElement;
  private readonly destLabels: HTMLDivElement;
  private readonly srcLabels: HTMLDivElement;
  private readonly zoomLabel: HTMLSpanElement;
  private tokens: string[] = [];
  private pixels: ImageData | null = null;
  private drag: { x: number; y: number; ox: number; oy: number; moved: boolean } | null = null;
  image: PatternImage | null = null;
  highlight: number | null = null;
  hover: Cell | null = null;
  /** CSS px per cell at zoom 1, the zoom factor and the pan offset (CSS px). */
  private base = 1;
  zoom = 1;
  ox = 0;
  oy = 0;
  /** Called after the view moved (zoom or pan) - owners re-place tooltips. */
  onViewChange: (() => void) | null = null;

  constructor(private readonly colors: () => PatternColors) {
    injectPatternStyles();
    this.canvas = el("canvas", { testid: "lw-attn-canvas", className: "lw-pv-canvas", attrs: { tabindex: "0", "aria-label": "Attention pattern (+/- zoom, arrows pan)" } });
    this.overlay = el("canvas", { className: "lw-pv-overlay", attrs: { "aria-hidden": "true" } });
    this.stage = el("div", { className: "lw-pv-stage", children: [this.canvas, this.overlay] });
    this.headLabel = el("div", { testid: "lw-head-label", className: "lw-head-label" });
    this.destLabels = el("div", { className: "lw-pv-dest" });
    this.srcLabels = el("div", { className: "lw-pv-src" });
    this.zoomLabel = el("span", { testid: "lw-zoom-level", className: "lw-zoom-level" });
    const button = (testid: string, text: string, label: string, fn: () => void) => {
      const b = el("button", { testid, className: "lw-button", text, attrs: { type: "button", title: label } });
      b.addEventListener("click", fn);
      return b;
    };
    const zoombar = el("div", {
      className: "lw-zoombar",
      children: [
        button("lw-zoom-out", "−", "Zoom out", () => this.zoomBy(0.5)),
        button("lw-zoom-in", "+", "Zoom in", () => this.zoomBy(2)),
        button("lw-zoom-fit", "Fit", "Whole pattern", () => this.setView(1, 0, 0)),
        this.zoomLabel,
      ],
    });
    this.node = el("div", {
      className: "lw-main",
      children: [el("div", { className: "lw-pv-head", children: [this.headLabel, zoombar] }), el("div", { className: "lw-pv", children: [el("div"), this.srcLabels, this.destLabels, this.stage] })],
    });
    this.wire();
  }

  // -- geometry -------------------------------------------------------------------------
  get n(): number {
    return this.tokens.length;
  }

  get cellW(): number {
    return this.base * this.zoom;
  }

  /** Viewport side, CSS px. */
  get side(): number {
    return Math.min(VIEWPORT, Math.round(this.n * this.base));
  }

  get maxZoom(): number {
    return Math.max(1, MAX_CELL / this.base);
  }

  /** The cell under a mouse event, or null outside the pattern. */
  cellAt(ev: MouseEvent): Cell | null {
    const { x, y } = localPoint(this.canvas, ev);
    const side = this.side;
    if (x < 0 || y < 0 || x >= side || y >= side) return null;
    const col = Math.floor((x + this.ox) / this.cellW);
    const row = Math.floor((y + this.oy) / this.cellW);
    return row >= 0 && row < this.n && col >= 0 && col < this.n ? { row, col } : null;
  }

  /** Visible positions [first, last) along both axes. */
  visibleRange(): [number, number] {
    const a = Math.max(0, Math.floor(this.oy / this.cellW));
    const b = Math.min(this.n, Math.ceil((this.oy + this.side) / this.cellW));
    return [a, b];
  }

  /** Zoom (clamped to 1..maxZoom) and pan (clamped to the pattern), then redraw. */
  setView(zoom: number, ox: number, oy: number): void {
    this.zoom = Math.min(this.maxZoom, Math.max(1, zoom));
    const limit = Math.max(0, this.n * this.cellW - this.side);
    this.ox = Math.min(limit, Math.max(0, ox));
    this.oy = Math.min(limit, Math.max(0, oy));
    this.publish();
    this.renderLabels();
    this.paintBase();
    this.paint();
    this.onViewChange?.();
  }

  /** Zoom by `factor` keeping the point (x, y) of the viewport (default its centre) in place. */
  zoomBy(factor: number, x = this.side / 2, y = this.side / 2): void {
    const z = Math.min(this.maxZoom, Math.max(1, this.zoom * factor));
    const k = z / this.zoom;
    this.setView(z, (this.ox + x) * k - x, (this.oy + y) * k - y);
  }

  // -- content --------------------------------------------------------------------------
  /**
   * Draw `image` over `tokens`; the view (zoom, pan) is kept while the token count stays.
   * `redraw = false`: the caller knows the pixels are the same (only mode / name changed).
   */
  show(image: PatternImage | null, tokens: string[], redraw = true): void {
    const resized = tokens.length !== this.n;
    const relabel = resized || tokens.some((t, i) => t !== this.tokens[i]);
    this.tokens = tokens;
    this.image = image;
    const d = this.canvas.dataset;
    d.layer = image ? String(image.layer) : "";
    d.head = image ? String(image.head) : "";
    d.mode = image?.mode ?? "default";
    d.resolution = image?.resolution ?? "full";
    const suffix = image?.mode === "locked" ? " (locked)" : image?.mode === "preview" ? " (preview)" : "";
    this.headLabel.textContent = image ? `${image.name}${suffix}` : "";
    if (resized) {
      this.base = baseCell(tokens.length);
      this.resize();
      if (this.hover && (this.hover.row >= this.n || this.hover.col >= this.n)) this.hover = null;
      this.setView(1, 0, 0);
      return;
    }
    if (relabel) this.renderLabels();
    if (!redraw && !relabel) return;
    this.paintBase();
    this.paint();
  }

  /** The value at a cell of what is drawn (NaN when nothing is). */
  value(cell: Cell): number {
    return this.image ? this.image.value(cell.row, cell.col) : NaN;
  }

  /** Attention from position `i` to every position (row `i`), or null. */
  rowOf(i: number): Float32Array | null {
    const img = this.image;
    if (!img || i < 0 || i >= this.n) return null;
    const row = new Float32Array(this.n);
    for (let j = 0; j < this.n; j++) row[j] = img.value(i, j);
    return row;
  }

  setHighlight(i: number | null): void {
    this.highlight = i;
    this.canvas.dataset.highlight = i === null ? "" : String(i);
    for (const group of [this.destLabels, this.srcLabels]) {
      for (const child of group.children) (child as HTMLElement).classList.toggle("lw-hl", i !== null && (child as HTMLElement).dataset.index === String(i));
    }
    this.paint();
  }

  /** Move the hover outline; repaints only the cells it leaves and enters. */
  setHover(cell: Cell | null): void {
    const old = this.hover;
    if (old?.row === cell?.row && old?.col === cell?.col) return;
    this.hover = cell;
    const rects = [old, cell].filter((c): c is Cell => c !== null).map((c) => this.cellRect(c, 2));
    this.paint(rects);
  }

  // -- drawing --------------------------------------------------------------------------
  private dpr(): number {
    return typeof devicePixelRatio === "number" && devicePixelRatio > 0 ? devicePixelRatio : 1;
  }

  private resize(): void {
    const side = this.side;
    const px = Math.max(1, Math.round(side * this.dpr()));
    for (const c of [this.canvas, this.overlay]) {
      c.width = px;
      c.height = px;
      c.style.width = `${side}px`;
      c.style.height = `${side}px`;
    }
    this.stage.style.width = `${side}px`;
    this.stage.style.height = `${side}px`;
    this.destLabels.style.height = `${side}px`;
    this.srcLabels.style.width = `${side}px`;
    this.pixels = null;
  }

  private publish(): void {
    const d = this.canvas.dataset;
    d.rows = String(this.n);
    d.cols = String(this.n);
    d.cellWidth = String(this.cellW);
    d.cellHeight = String(this.cellW);
    d.zoom = String(Math.round(this.zoom * 1000) / 1000);
    d.offsetX = String(this.ox);
    d.offsetY = String(this.oy);
    this.zoomLabel.textContent = this.zoom === 1 ? "" : `×${this.zoom < 10 ? this.zoom.toFixed(1) : Math.round(this.zoom)}`;
  }

  /** Rasterise the visible window of the image into the canvas. */
  paintBase(): void {
    const ctx = this.canvas.getContext("2d");
    if (!ctx) return; // no canvas backend (tests): geometry and events still work
    const img = this.image;
    const w = this.canvas.width;
    const h = this.canvas.height;
    if (!img || !this.n) {
      ctx.clearRect(0, 0, w, h);
      return;
    }
    if (!this.pixels || this.pixels.width !== w || this.pixels.height !== h) this.pixels = ctx.createImageData(w, h);
    const scale = w / Math.max(1, this.side);
    const out = new Uint32Array(this.pixels.data.buffer, this.pixels.data.byteOffset, w * h);
    rasterWindow(img, { width: w, height: h, cellPx: this.cellW * scale, x0: this.ox * scale, y0: this.oy * scale }, out);
    ctx.putImageData(this.pixels, 0, 0);
  }

  /** CSS-px rectangle of a cell in the viewport, grown by `pad`. */
  private cellRect(c: Cell, pad: number): [number, number, number, number] {
    const w = this.cellW;
    return [c.col * w - this.ox - pad, c.row * w - this.oy - pad, w + 2 * pad, w + 2 * pad];
  }

  /** Repaint the overlay (highlight, hover) - only inside `dirty` rectangles when given. */
  paint(dirty?: Array<[number, number, number, number]>): void {
    const ctx = this.overlay.getContext("2d");
    if (!ctx) return;
    const scale = this.overlay.width / Math.max(1, this.side);
    ctx.setTransform(scale, 0, 0, scale, 0, 0);
    const regions = dirty ?? [[0, 0, this.side, this.side] as [number, number, number, number]];
    const { accent, dim, fg } = this.colors();
    const w = this.cellW;
    const side = this.side;
    for (const [x, y, rw, rh] of regions) {
      ctx.save();
      ctx.beginPath();
      ctx.rect(x, y, rw, rh);
      ctx.clip();
      ctx.clearRect(x, y, rw, rh);
      const i = this.highlight;
      if (i !== null && i < this.n) {
        const at = i * w;
        const cx = at - this.ox;
        const cy = at - this.oy;
        ctx.fillStyle = dim;
        ctx.fillRect(0, 0, cx, cy);
        ctx.fillRect(cx + w, 0, side - cx - w, cy);
        ctx.fillRect(0, cy + w, cx, side - cy - w);
        ctx.fillRect(cx + w, cy + w, side - cx - w, side - cy - w);
        ctx.strokeStyle = accent;
        ctx.lineWidth = 1.5;
        ctx.strokeRect(0.75, cy + 0.75, side - 1.5, Math.max(0.5, w - 1.5));
        ctx.strokeRect(cx + 0.75, 0.75, Math.max(0.5, w - 1.5), side - 1.5);
      }
      if (this.hover) {
        const [hx, hy, hw, hh] = this.cellRect(this.hover, 0);
        ctx.strokeStyle = fg;
        ctx.lineWidth = 1;
        ctx.strokeRect(hx + 0.5, hy + 0.5, Math.max(1, hw - 1), Math.max(1, hh - 1));
      }
      ctx.restore();
    }
  }

  /** Labels for the visible positions only, and only when a cell can hold one. */
  private renderLabels(): void {
    const w = this.cellW;
    if (w < LABEL_MIN_CELL || !this.n) {
      this.destLabels.replaceChildren();
      this.srcLabels.replaceChildren();
      this.stage.dataset.labels = "hidden";
      return;
    }
    this.stage.dataset.labels = "shown";
    const [r0, r1] = this.visibleRange();
    const font = `${Math.max(6, Math.min(12, Math.floor(w) - 2))}px`;
    const make = (testid: string, i: number, along: "top" | "left", offset: number): HTMLDivElement => {
      const tok = this.tokens[i] ?? "";
      const node = el("div", { testid, className: testid, text: visibleToken(tok), attrs: { "data-index": String(i), title: `${i}: ${JSON.stringify(tok)}` } });
      const s = node.style;
      s[along] = `${i * w - offset}px`;
      s[along === "top" ? "height" : "width"] = s.lineHeight = `${w}px`;
      s.fontSize = font;
      if (this.highlight === i) node.classList.add("lw-hl");
      return node;
    };
    const rows: HTMLDivElement[] = [];
    const cols: HTMLDivElement[] = [];
    for (let i = r0; i < r1; i++) rows.push(make("lw-dest-label", i, "top", this.oy));
    const c0 = Math.max(0, Math.floor(this.ox / w));
    const c1 = Math.min(this.n, Math.ceil((this.ox + this.side) / w));
    for (let i = c0; i < c1; i++) cols.push(make("lw-src-label", i, "left", this.ox));
    this.destLabels.replaceChildren(...rows);
    this.srcLabels.replaceChildren(...cols);
  }

  // -- input ----------------------------------------------------------------------------
  private wire(): void {
    const c = this.canvas;
    c.addEventListener("wheel", (ev) => {
      const { x, y } = localPoint(c, ev);
      if (ev.ctrlKey || ev.metaKey) {
        ev.preventDefault();
        this.zoomBy(2 ** (-ev.deltaY / 250), x, y);
        return;
      }
      if (this.zoom === 1) return; // let the notebook scroll
      const before = [this.ox, this.oy];
      const dx = ev.shiftKey && !ev.deltaX ? ev.deltaY : ev.deltaX;
      const dy = ev.shiftKey && !ev.deltaX ? 0 : ev.deltaY;
      this.setView(this.zoom, this.ox + dx, this.oy + dy);
      if (this.ox !== before[0] || this.oy !== before[1]) ev.preventDefault(); // at an edge: scroll the page
    }, { passive: false });
    c.addEventListener("pointerdown", (ev) => {
      if (ev.button !== 0 || this.zoom === 1) return;
      this.drag = { x: ev.clientX, y: ev.clientY, ox: this.ox, oy: this.oy, moved: false };
      if (typeof c.setPointerCapture === "function") c.setPointerCapture(ev.pointerId);
    });
    c.addEventListener("pointermove", (ev) => {
      const d = this.drag;
      if (!d) return;
      const dx = ev.clientX - d.x;
      const dy = ev.clientY - d.y;
      if (!d.moved && Math.abs(dx) + Math.abs(dy) < 3) return;
      d.moved = true;
      this.canvas.dataset.dragging = "true";
      this.setView(this.zoom, d.ox - dx, d.oy - dy);
    });
    const end = () => {
      this.drag = null;
      delete this.canvas.dataset.dragging;
    };
    c.addEventListener("pointerup", end);
    c.addEventListener("pointercancel", end);
    c.addEventListener("keydown", (ev) => {
      const step = Math.max(this.cellW, this.side / 8);
      const moves: Record<string, [number, number]> = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
      if (ev.key === "+" || ev.key === "=") this.zoomBy(2);
      else if (ev.key === "-" || ev.key === "_") this.zoomBy(0.5);
      else if (ev.key === "0") this.setView(1, 0, 0);
      else if (moves[ev.key] && this.zoom > 1) this.setView(this.zoom, this.ox + moves[ev.key]![0], this.oy + moves[ev.key]![1]);
      else return;
      ev.preventDefault();
    });
  }

  get dragging(): boolean {
    return this.drag?.moved === true;
  }
}
