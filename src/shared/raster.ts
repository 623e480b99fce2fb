/**
 * Rasterising a window of a byte-coded `n x n` pattern straight into canvas pixels.
 *
 * Only the visible window is drawn, at device resolution, so no `n x n` RGBA copy of the
 * pattern is ever kept. Zoomed in (a cell covers at least a pixel) each pixel takes the
 * cell under its centre; zoomed out (several cells per pixel) it takes the largest code
 * of the cells it covers, so a one-token stripe stays visible, as in the thumbnails.
 */
import { NAN_PACKED } from "./colors";

export interface RasterSource {
  /** Positions per side. */
  n: number;
  /** Side of the coded block (n, or the thumbnail size). */
  side: number;
  codes: Uint8Array;
  /** Flat index of the block's first code in `codes`. */
  offset: number;
  /** Position -> row/column of the block (thumbnails); null when side == n. */
  bins: Int32Array | null;
  /** Packed colour of each code. */
  table: Uint32Array;
  /** Draw position 0's column as "no value" and leave it out of pooled maxima. */
  hideSink: boolean;
}

export interface RasterWindow {
  /** Output size in device pixels. */
  width: number;
  height: number;
  /** Device pixels per cell. */
  cellPx: number;
  /** Content offset of the window's top-left corner, device pixels. */
  x0: number;
  y0: number;
  /** Where pixel (0, 0) goes in `out` and the distance between rows (default 0 and width). */
  start?: number;
  stride?: number;
}

/** Cell ranges [start, end) covered by each output pixel along one axis (end = start + 1 when magnifying). */
function spans(count: number, origin: number, cellPx: number, n: number): Int32Array {
  const out = new Int32Array(2 * count);
  const magnify = cellPx >= 1;
  for (let p = 0; p < count; p++) {
    let a: number;
    let b: number;
    if (magnify) {
      a = Math.floor((origin + p + 0.5) / cellPx);
      b = a + 1;
    } else {
      a = Math.floor((origin + p) / cellPx);
      b = Math.max(a + 1, Math.ceil((origin + p + 1) / cellPx));
    }
    out[2 * p] = Math.min(a, n);
    out[2 * p + 1] = Math.min(b, n);
  }
  return out;
}

/** Fill `out` (packed RGBA, row-major; see `start` / `stride`) with the window of `src`. */
export function rasterWindow(src: RasterSource, win: RasterWindow, out: Uint32Array): void {
  const { width: W, height: H } = win;
  const stride = win.stride ?? W;
  const start = win.start ?? 0;
  const rows = spans(H, win.y0, win.cellPx, src.n);
  const cols = spans(W, win.x0, win.cellPx, src.n);
  const bin = src.bins;
  const at = (p: number): number => (bin ? bin[p]! : p);
  const codes = src.codes;
  const table = src.table;
  let prevA = -1;
  let prevB = -1;
  for (let py = 0; py < H; py++) {
    const rA = rows[2 * py]!;
    const rB = rows[2 * py + 1]!;
    const line = start + py * stride;
    if (rA === prevA && rB === prevB && py > 0) {
      out.copyWithin(line, line - stride, line - stride + W); // same cells as the row above
      continue;
    }
    prevA = rA;
    prevB = rB;
    for (let px = 0; px < W; px++) {
      let cA = cols[2 * px]!;
      const cB = cols[2 * px + 1]!;
      if (rA >= rB || cA >= cB) {
        out[line + px] = 0; // beyond the pattern
        continue;
      }
      if (src.hideSink && cA === 0) {
        if (cB === 1) {
          out[line + px] = NAN_PACKED;
          continue;
        }
        cA = 1;
      }
      let best = 0;
      for (let r = rA; r < rB; r++) {
        const base = src.offset + at(r) * src.side;
        for (let c = cA; c < cB; c++) {
          const code = codes[base + at(c)]!;
          if (code > best) best = code;
        }
      }
      out[line + px] = table[best]!;
    }
  }
}

/** Position -> bin index for thumbnail bin `edges` (length bins + 1, from 0 to n). */
export function binsOf(edges: number[] | null, n: number, side: number): Int32Array | null {
  if (side === n) return null;
  const out = new Int32Array(n);
  if (edges && edges.length === side + 1 && edges[edges.length - 1] === n) {
    for (let b = 0; b < side; b++) for (let p = edges[b]!; p < edges[b + 1]!; p++) out[p] = b;
  } else {
    for (let p = 0; p < n; p++) out[p] = Math.min(side - 1, Math.floor((p * side) / n)); // even split
  }
  return out;
}
