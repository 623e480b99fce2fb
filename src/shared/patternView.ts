/**
 * The big dest x src pattern: canvas plus token labels (rows = destination/query,
 * columns = source/key). Hovering a token highlights its row (attention from it) and
 * column (attention to it) and dims the rest.
 */
import type { ColorScale } from "./colors";
import { el } from "./dom";
import { GridCanvas, outlineCell, type Cell, type Overlay } from "./grid";
import { visibleToken } from "./tokens";

/** One head's dest x src pattern as the view draws it. */
export interface Display {
  layer: number;
  head: number;
  name: string;
  mode: "locked" | "preview" | "default";
  resolution: "full" | "thumbnail";
  /** Side of `data` (`n`, or the thumbnail size when pooled). */
  size: number;
  data: Float32Array;
}

export class PatternView {
  readonly node: HTMLDivElement;
  readonly grid: GridCanvas;
  readonly headLabel: HTMLDivElement;
  private readonly destLabels: HTMLDivElement;
  private readonly srcLabels: HTMLDivElement;
  private key = "";
  private data: Float32Array | null = null;
  /** The drawn values at `n x n` (upsampled from a thumbnail when needed). */
  full: Float32Array | null = null;
  display: Display | null = null;
  highlight: number | null = null;
  hover: Cell | null = null;

  constructor(private readonly colors: () => { accent: string; dim: string; fg: string }) {
    const canvas = el("canvas", { testid: "lw-attn-canvas", className: "lw-canvas", attrs: { tabindex: "0" } });
    this.grid = new GridCanvas(canvas);
    this.headLabel = el("div", { testid: "lw-head-label", className: "lw-head-label" });
    this.destLabels = el("div", { className: "lw-dest-labels" });
    this.srcLabels = el("div", { className: "lw-src-labels" });
    this.node = el("div", {
      className: "lw-main",
      children: [this.headLabel, el("div", { className: "lw-grid", children: [el("div"), this.srcLabels, this.destLabels, canvas] })],
    });
  }

  /** Draw `display` (re-rasterising only when the head, data or tokens changed). */
  show(display: Display | null, tokens: string[], scale: ColorScale, force = false): void {
    this.display = display;
    const n = tokens.length;
    const cell = cellSize(n);
    const size = display?.size ?? 0;
    const key = display ? `${display.layer}/${display.head}/${display.resolution}/${n}/${size}` : "";
    const d = this.grid.canvas.dataset;
    d.layer = display ? String(display.layer) : "";
    d.head = display ? String(display.head) : "";
    d.mode = display?.mode ?? "default";
    d.resolution = display?.resolution ?? "full";
    const suffix = display?.mode === "locked" ? " (locked)" : display?.mode === "preview" ? " (preview)" : "";
    this.headLabel.textContent = display ? `${display.name}${suffix}` : "";
    if (force || key !== this.key || this.grid.geometry.rows !== n) {
      this.renderLabels(tokens, cell);
      this.grid.setGeometry({ rows: n, cols: n, cellW: cell, cellH: cell });
    }
    if (force || key !== this.key || display?.data !== this.data || this.grid.geometry.rows !== n) {
      this.key = key;
      this.data = display?.data ?? null;
      this.full = display ? upsample(display.data, display.size, n) : null;
      this.grid.setValues(this.full ?? new Float32Array(0), scale);
    }
    this.paint();
  }

  /** Attention from token `i` to every token (row `i`), or null. */
  rowOf(i: number, n: number): Float32Array | null {
    if (!this.full || i < 0 || i >= n) return null;
    return this.full.subarray(i * n, (i + 1) * n);
  }

  value(cell: Cell, n: number): number {
    return this.full?.[cell.row * n + cell.col] ?? NaN;
  }

  setHighlight(i: number | null): void {
    this.highlight = i;
    this.grid.canvas.dataset.highlight = i === null ? "" : String(i);
    for (const group of [this.destLabels, this.srcLabels]) {
      for (const child of group.children) (child as HTMLElement).classList.toggle("lw-hl", i !== null && (child as HTMLElement).dataset.index === String(i));
    }
    this.paint();
  }

  paint(): void {
    const overlays: Overlay[] = [];
    const { accent, dim, fg } = this.colors();
    const i = this.highlight;
    if (i !== null) overlays.push(dimExcept(i, dim), outlineLine(i, accent));
    if (this.hover) overlays.push(outlineCell(this.hover, fg, 1));
    this.grid.paint(overlays);
  }

  private renderLabels(tokens: string[], cell: number): void {
    const font = `${Math.max(6, Math.min(12, cell - 2))}px`;
    this.destLabels.replaceChildren(
      ...tokens.map((tok, i) =>
        el("div", { testid: "lw-dest-label", className: "lw-dest-label", text: visibleToken(tok), attrs: { "data-index": String(i), title: `${i}: ${JSON.stringify(tok)}`, style: `height:${cell}px;line-height:${cell}px;font-size:${font}` } }),
      ),
    );
    this.srcLabels.replaceChildren(
      ...tokens.map((tok, i) =>
        el("div", { testid: "lw-src-label", className: "lw-src-label", text: visibleToken(tok), attrs: { "data-index": String(i), title: `${i}: ${JSON.stringify(tok)}`, style: `width:${cell}px;line-height:${cell}px;font-size:${font}` } }),
      ),
    );
  }
}

export function cellSize(n: number): number {
  return Math.max(2, Math.min(24, Math.floor(560 / Math.max(1, n))));
}

/** Nearest-neighbour upsampling of an `s x s` grid to `n x n` (identity when s == n). */
export function upsample(data: Float32Array, s: number, n: number): Float32Array {
  if (s === n || s === 0) return data;
  const out = new Float32Array(n * n);
  for (let r = 0; r < n; r++) {
    const sr = Math.min(s - 1, Math.floor((r * s) / n));
    for (let c = 0; c < n; c++) out[r * n + c] = data[sr * s + Math.min(s - 1, Math.floor((c * s) / n))]!;
  }
  return out;
}

function dimExcept(i: number, color: string): Overlay {
  return (ctx, g) => {
    ctx.fillStyle = color;
    const W = g.cols * g.cellW;
    const H = g.rows * g.cellH;
    const x0 = i * g.cellW;
    const x1 = x0 + g.cellW;
    const y0 = i * g.cellH;
    const y1 = y0 + g.cellH;
    ctx.fillRect(0, 0, x0, y0);
    ctx.fillRect(x1, 0, W - x1, y0);
    ctx.fillRect(0, y1, x0, H - y1);
    ctx.fillRect(x1, y1, W - x1, H - y1);
  };
}

function outlineLine(i: number, color: string): Overlay {
  return (ctx, g) => {
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.5;
    ctx.strokeRect(0.75, i * g.cellH + 0.75, g.cols * g.cellW - 1.5, g.cellH - 1.5);
    ctx.strokeRect(i * g.cellW + 0.75, 0.75, g.cellW - 1.5, g.rows * g.cellH - 1.5);
  };
}
