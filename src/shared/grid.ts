/**
 * A heatmap drawn on a canvas: one colour per cell, rasterised once at one pixel per cell
 * and scaled up without smoothing, so a 256 x 256 pattern repaints in a millisecond.
 *
 * DOM contract: the canvas carries `data-rows`, `data-cols`, `data-cell-width` and
 * `data-cell-height` (CSS px); cell (r, c) is centred at ((c + .5) * w, (r + .5) * h).
 */
import type { ColorScale } from "./colors";
import { localPoint } from "./dom";

export interface Geometry {
  rows: number;
  cols: number;
  cellW: number;
  cellH: number;
}

export interface Cell {
  row: number;
  col: number;
}

/** RGBA pixels (rows x cols) of `values` under `scale`. */
export function rasterize(values: ArrayLike<number>, rows: number, cols: number, scale: ColorScale): Uint8ClampedArray {
  const px = new Uint8ClampedArray(rows * cols * 4);
  for (let i = 0; i < rows * cols; i++) {
    const [r, g, b, a] = scale.rgba(values[i] ?? NaN);
    px[4 * i] = r;
    px[4 * i + 1] = g;
    px[4 * i + 2] = b;
    px[4 * i + 3] = a;
  }
  return px;
}

export type Overlay = (ctx: CanvasRenderingContext2D, g: Geometry) => void;

export class GridCanvas {
  geometry: Geometry = { rows: 0, cols: 0, cellW: 1, cellH: 1 };
  private bitmap: HTMLCanvasElement | null = null;

  constructor(readonly canvas: HTMLCanvasElement) {}

  /** Size the canvas (CSS px and device px) and publish its geometry as data attributes. */
  setGeometry(g: Geometry): void {
    this.geometry = g;
    const dpr = typeof devicePixelRatio === "number" && devicePixelRatio > 0 ? devicePixelRatio : 1;
    const w = g.cols * g.cellW;
    const h = g.rows * g.cellH;
    this.canvas.width = Math.max(1, Math.round(w * dpr));
    this.canvas.height = Math.max(1, Math.round(h * dpr));
    this.canvas.style.width = `${w}px`;
    this.canvas.style.height = `${h}px`;
    const d = this.canvas.dataset;
    d.rows = String(g.rows);
    d.cols = String(g.cols);
    d.cellWidth = String(g.cellW);
    d.cellHeight = String(g.cellH);
  }

  /** Replace the cell colours (values row-major, rows x cols). */
  setValues(values: ArrayLike<number>, scale: ColorScale): void {
    const { rows, cols } = this.geometry;
    this.bitmap = null;
    if (!rows || !cols) return;
    const off = document.createElement("canvas");
    off.width = cols;
    off.height = rows;
    const ctx = off.getContext("2d");
    if (!ctx) return; // no canvas backend (tests): geometry and events still work
    const img = ctx.createImageData(cols, rows);
    img.data.set(rasterize(values, rows, cols, scale));
    ctx.putImageData(img, 0, 0);
    this.bitmap = off;
  }

  /** Draw the bitmap, then `overlays` in CSS-pixel coordinates. */
  paint(overlays: Overlay[] = []): void {
    const ctx = this.canvas.getContext("2d");
    if (!ctx) return;
    const dpr = this.canvas.width / Math.max(1, this.geometry.cols * this.geometry.cellW);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    if (this.bitmap) {
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(this.bitmap, 0, 0, this.canvas.width, this.canvas.height);
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    for (const draw of overlays) draw(ctx, this.geometry);
  }

  /** The cell under a mouse event, or null outside the grid. */
  cellAt(ev: MouseEvent): Cell | null {
    const { x, y } = localPoint(this.canvas, ev);
    const { rows, cols, cellW, cellH } = this.geometry;
    const col = Math.floor(x / cellW);
    const row = Math.floor(y / cellH);
    return row >= 0 && row < rows && col >= 0 && col < cols ? { row, col } : null;
  }
}

/** Overlay: outline cell (row, col). */
export function outlineCell(cell: Cell, color: string, width = 2): Overlay {
  return (ctx, g) => {
    ctx.strokeStyle = color;
    ctx.lineWidth = width;
    ctx.strokeRect(cell.col * g.cellW + width / 2, cell.row * g.cellH + width / 2, g.cellW - width, g.cellH - width);
  };
}
