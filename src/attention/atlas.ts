/**
 * The head thumbnails: every shown head of every shown layer drawn into ONE canvas (an
 * atlas: rows = layers, columns = heads), under a grid of light cells that carry the
 * hover, click, keyboard and accessibility (`role="grid"` + `aria-activedescendant`).
 *
 * The cells are built when the shown layers/heads change, never on a prompt edit; a new
 * `thumbs` payload only repaints the canvas, and only the heads whose codes or colours
 * changed. Selection, lock and preview are attributes (CSS), not repaints.
 */
import { el } from "../shared/dom";
import { rasterWindow } from "../shared/raster";
import type { HeadRef } from "./display";

/** CSS px per head cell (the thumbnail is drawn inset by {@link INSET}). */
export function pitchFor(heads: number): number {
  return Math.max(18, Math.min(38, Math.floor(900 / Math.max(1, heads))));
}

const INSET = 2;
const LABEL_W = 34;
let instances = 0;

export interface AtlasHandlers {
  hover(ref: HeadRef | null): void;
  toggle(ref: HeadRef): void;
  /** The keyboard moved to a head (or left the grid: null). */
  active(ref: HeadRef | null): void;
}

export interface AtlasFrame {
  /** Codes [L, H, t, t]. */
  codes: Uint8Array;
  t: number;
  /** Colour table of head (li, hi). */
  table(li: number, hi: number): Uint32Array;
  hideSink: boolean;
  /** Identity of everything that colours the heads (options), to know when all must repaint. */
  colorKey: string;
}

export class ThumbAtlas {
  readonly node: HTMLDivElement;
  readonly grid: HTMLDivElement;
  readonly canvas: HTMLCanvasElement;
  private readonly id = `lw-atlas-${++instances}`;
  private rows: HTMLDivElement[] = [];
  private cells: HTMLDivElement[][] = [];
  private shape = "";
  private pitch = 36;
  private drawn: { codes: Uint8Array; t: number; colorKey: string; hideSink: boolean } | null = null;
  private marks = { selected: -1, locked: "", preview: "" };
  active: HeadRef | null = null;
  /** Heads repainted by the last {@link draw} (also `data-repainted` on the canvas). */
  lastRepainted = 0;

  constructor(private readonly on: AtlasHandlers) {
    this.canvas = el("canvas", { testid: "lw-thumb-atlas", className: "lw-atlas-canvas", attrs: { "aria-hidden": "true" } });
    this.grid = el("div", {
      className: "lw-atlas",
      attrs: { role: "grid", tabindex: "0", "aria-label": "Attention heads: arrow keys move, Enter locks or unlocks, Escape unlocks" },
      children: [this.canvas],
    });
    this.node = el("div", { testid: "lw-thumb-grid", className: "lw-thumb-grid", children: [this.grid] });
    this.wire();
  }

  get layerCount(): number {
    return this.rows.length;
  }

  get headCount(): number {
    return this.cells[0]?.length ?? 0;
  }

  /** Build the cells for these layers and heads (a no-op when nothing changed). */
  layout(layers: number[], heads: number[], names: string[]): void {
    const shape = JSON.stringify([layers, heads, names]);
    if (shape === this.shape) return;
    this.shape = shape;
    this.drawn = null;
    this.marks = { selected: -1, locked: "", preview: "" };
    const P = (this.pitch = pitchFor(heads.length));
    const width = heads.length * P;
    const height = layers.length * P;
    this.grid.style.width = `${LABEL_W + width}px`;
    this.grid.style.height = `${height}px`;
    const c = this.canvas;
    const dpr = typeof devicePixelRatio === "number" && devicePixelRatio > 0 ? devicePixelRatio : 1;
    c.width = Math.max(1, Math.round(width * dpr));
    c.height = Math.max(1, Math.round(height * dpr));
    c.style.width = `${width}px`;
    c.style.height = `${height}px`;
    c.style.left = `${LABEL_W}px`;
    Object.assign(c.dataset, { rows: String(layers.length), cols: String(heads.length), cellWidth: String(P), cellHeight: String(P) });
    this.cells = [];
    this.rows = layers.map((layer, li) => {
      const row = heads.map((head, hi) => {
        const name = names[li * heads.length + hi] ?? `L${layer}H${head}`;
        return el("div", {
          testid: "lw-thumb",
          className: "lw-thumb",
          attrs: {
            role: "gridcell", id: `${this.id}-${li}-${hi}`, title: name, "aria-label": name, "aria-selected": "false",
            "data-layer": String(layer), "data-head": String(head), "data-li": String(li), "data-hi": String(hi),
            "data-locked": "false", "data-preview": "false", style: `left:${LABEL_W + hi * P}px;width:${P}px;height:${P}px`,
          },
        });
      });
      this.cells.push(row);
      return el("div", {
        testid: "lw-thumb-row",
        className: "lw-thumb-row",
        attrs: { role: "row", "data-layer": String(layer), "data-selected": "false", style: `top:${li * P}px;height:${P}px;width:${LABEL_W + width}px` },
        children: [el("span", { testid: "lw-thumb-row-label", className: "lw-thumb-row-label", text: `L${layer}`, attrs: { role: "rowheader", style: `width:${LABEL_W - 4}px;line-height:${P}px` } }), ...row],
      });
    });
    this.grid.replaceChildren(this.canvas, ...this.rows);
    if (this.active && (this.active.layerIdx >= layers.length || this.active.headIdx >= heads.length)) this.active = null;
    this.markActive();
  }

  /** Paint the heads whose codes or colours changed since the last call (all when `force`). */
  draw(frame: AtlasFrame, force = false): void {
    const L = this.layerCount;
    const H = this.headCount;
    const t = frame.t;
    const prev = this.drawn;
    const all = force || !prev || prev.t !== t || prev.colorKey !== frame.colorKey || prev.hideSink !== frame.hideSink || frame.codes.length !== L * H * t * t;
    const block = t * t;
    const changed: HeadRef[] = [];
    for (let li = 0; li < L; li++) {
      for (let hi = 0; hi < H; hi++) {
        if (all || !sameBlock(prev!.codes, frame.codes, (li * H + hi) * block, block)) changed.push({ layerIdx: li, headIdx: hi });
      }
    }
    this.drawn = { codes: frame.codes, t, colorKey: frame.colorKey, hideSink: frame.hideSink };
    this.lastRepainted = changed.length;
    this.canvas.dataset.repainted = String(changed.length);
    const ctx = this.canvas.getContext("2d");
    if (!ctx || !changed.length || frame.codes.length < L * H * block) return;
    const W = this.canvas.width;
    const scale = W / Math.max(1, H * this.pitch);
    const inner = Math.max(1, Math.round((this.pitch - 2 * INSET) * scale));
    const at = (i: number) => Math.round((i * this.pitch + INSET) * scale);
    const paintHead = (ref: HeadRef, out: Uint32Array, start: number, stride: number) => {
      const offset = (ref.layerIdx * H + ref.headIdx) * block;
      rasterWindow(
        { n: t, side: t, codes: frame.codes, offset, bins: null, table: frame.table(ref.layerIdx, ref.headIdx), hideSink: frame.hideSink },
        { width: inner, height: inner, cellPx: inner / t, x0: 0, y0: 0, start, stride },
        out,
      );
    };
    if (changed.length > (L * H) / 4) {
      // Many heads: one image for the whole atlas (transient; dropped after the put).
      const img = ctx.createImageData(W, this.canvas.height);
      const out = new Uint32Array(img.data.buffer, img.data.byteOffset, W * this.canvas.height);
      for (let li = 0; li < L; li++) for (let hi = 0; hi < H; hi++) paintHead({ layerIdx: li, headIdx: hi }, out, at(li) * W + at(hi), W);
      ctx.putImageData(img, 0, 0);
      return;
    }
    for (const ref of changed) {
      const img = ctx.createImageData(inner, inner);
      paintHead(ref, new Uint32Array(img.data.buffer, img.data.byteOffset, inner * inner), 0, inner);
      ctx.putImageData(img, at(ref.headIdx), at(ref.layerIdx));
    }
  }

  /** Reflect the selected layer, locked head and previewed head as attributes. */
  mark(selectedLayerIdx: number, locked: HeadRef | null, preview: HeadRef | null): void {
    const key = (r: HeadRef | null) => (r ? `${r.layerIdx},${r.headIdx}` : "");
    const m = this.marks;
    if (m.selected !== selectedLayerIdx) {
      this.rows[m.selected]?.setAttribute("data-selected", "false");
      this.rows[selectedLayerIdx]?.setAttribute("data-selected", "true");
      m.selected = selectedLayerIdx;
    }
    if (m.locked !== key(locked)) {
      this.setCell(m.locked, (c) => {
        c.dataset.locked = "false";
        c.setAttribute("aria-selected", "false");
      });
      m.locked = key(locked);
      this.setCell(m.locked, (c) => {
        c.dataset.locked = "true";
        c.setAttribute("aria-selected", "true");
      });
    }
    if (m.preview !== key(preview)) {
      this.setCell(m.preview, (c) => (c.dataset.preview = "false"));
      m.preview = key(preview);
      this.setCell(m.preview, (c) => (c.dataset.preview = "true"));
    }
  }

  /** Scroll the grid (not the page) so layer row `li` is in view. */
  scrollToLayer(li: number): void {
    const row = this.rows[li];
    if (!row) return;
    const top = li * this.pitch;
    const view = this.node.clientHeight;
    if (!view) return;
    const now = this.node.scrollTop;
    if (top < now || top + this.pitch > now + view) this.node.scrollTop = Math.max(0, top - (view - this.pitch) / 2);
  }

  /** The cell (layer, head indices) under an event target, or null. */
  refOf(target: EventTarget | null): HeadRef | null {
    if (!(target instanceof HTMLElement) || target.dataset.testid !== "lw-thumb") return null;
    const li = Number(target.dataset.li);
    const hi = Number(target.dataset.hi);
    return Number.isInteger(li) && Number.isInteger(hi) ? { layerIdx: li, headIdx: hi } : null;
  }

  private setCell(key: string, fn: (c: HTMLDivElement) => void): void {
    if (!key) return;
    const [li, hi] = key.split(",").map(Number);
    const c = this.cells[li!]?.[hi!];
    if (c) fn(c);
  }

  private markActive(): void {
    for (const row of this.cells) for (const c of row) if (c.dataset.active) delete c.dataset.active;
    const a = this.active;
    const cell = a ? this.cells[a.layerIdx]?.[a.headIdx] : undefined;
    if (cell) {
      cell.dataset.active = "true";
      this.grid.setAttribute("aria-activedescendant", cell.id);
    } else {
      this.grid.removeAttribute("aria-activedescendant");
    }
  }

  /** Move the keyboard cursor (clamped), scroll it into view and report it. */
  moveActive(ref: HeadRef): void {
    const L = this.layerCount;
    const H = this.headCount;
    if (!L || !H) return;
    const prev = this.active;
    this.active = { layerIdx: Math.min(L - 1, Math.max(0, ref.layerIdx)), headIdx: Math.min(H - 1, Math.max(0, ref.headIdx)) };
    if (prev) this.cells[prev.layerIdx]?.[prev.headIdx]?.removeAttribute("data-active");
    this.markActive();
    this.scrollToLayer(this.active.layerIdx);
    this.on.active(this.active);
  }

  private wire(): void {
    const g = this.grid;
    g.addEventListener("mouseover", (ev) => this.on.hover(this.refOf(ev.target)));
    this.node.addEventListener("mouseleave", () => this.on.hover(null));
    g.addEventListener("click", (ev) => {
      const ref = this.refOf(ev.target);
      if (!ref) return;
      this.active = ref;
      this.markActive();
      this.on.toggle(ref);
    });
    g.addEventListener("focus", () => {
      if (!this.active) this.moveActive({ layerIdx: Math.max(0, this.marks.selected), headIdx: 0 });
      else this.on.active(this.active);
    });
    g.addEventListener("blur", () => this.on.active(null));
    g.addEventListener("keydown", (ev) => {
      const a = this.active ?? { layerIdx: 0, headIdx: 0 };
      const moves: Record<string, [number, number]> = {
        ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1], PageUp: [-5, 0], PageDown: [5, 0],
      };
      const m = moves[ev.key];
      if (m) this.moveActive({ layerIdx: a.layerIdx + m[0], headIdx: a.headIdx + m[1] });
      else if (ev.key === "Home") this.moveActive({ layerIdx: a.layerIdx, headIdx: 0 });
      else if (ev.key === "End") this.moveActive({ layerIdx: a.layerIdx, headIdx: this.headCount - 1 });
      else if (ev.key === "Enter" || ev.key === " ") {
        if (!this.active) this.moveActive(a);
        this.on.toggle(this.active ?? a);
      } else if (ev.key === "Escape" && this.marks.locked) {
        const [li, hi] = this.marks.locked.split(",").map(Number);
        this.on.toggle({ layerIdx: li!, headIdx: hi! });
      } else return;
      ev.preventDefault();
    });
  }
}

function sameBlock(a: Uint8Array, b: Uint8Array, offset: number, size: number): boolean {
  if (a === b) return true;
  if (a.length < offset + size || b.length < offset + size) return false;
  for (let i = offset; i < offset + size; i++) if (a[i] !== b[i]) return false;
  return true;
}
