/**
 * Static figures of a heatmap view for export: an SVG string (escaped text, one `rect`
 * per cell) and a canvas for PNG. Both share one layout: title, column labels (rotated),
 * row labels, cells and a legend.
 */
import type { ColorScale } from "./colors";
import { formatValue } from "./format";
import type { Theme } from "./theme";

export interface FigureSpec {
  title: string;
  rows: number;
  cols: number;
  values: ArrayLike<number>;
  rowLabels: string[];
  colLabels: string[];
  scale: ColorScale;
  cell: number;
  theme: Theme;
}

interface Layout {
  left: number;
  top: number;
  width: number;
  height: number;
  legendX: number;
  totalW: number;
  totalH: number;
}

const FONT_PX = 11;
const TITLE_PX = 14;

function labelWidth(labels: string[]): number {
  const longest = labels.reduce((m, s) => Math.max(m, [...s].length), 0);
  return Math.min(160, 8 + longest * FONT_PX * 0.62);
}

function layout(s: FigureSpec): Layout {
  const left = labelWidth(s.rowLabels);
  const top = (s.title ? TITLE_PX + 12 : 6) + labelWidth(s.colLabels);
  const width = s.cols * s.cell;
  const height = s.rows * s.cell;
  const legendX = left + width + 16;
  return { left, top, width, height, legendX, totalW: legendX + 70, totalH: top + Math.max(height, 120) + 8 };
}

export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

/** Strip characters XML 1.0 forbids (control characters other than tab/newline). */
export function xmlSafe(text: string): string {
  // eslint-disable-next-line no-control-regex
  return escapeXml(text.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, "\ufffd"));
}

/** Vertically centred SVG text. */
export const MIDDLE = 'dominant-baseline="middle"';

/** A `<text>` element: `attrs` (position etc.), then the escaped `fill` and content. */
export function svgText(attrs: string, fill: string, text: string): string {
  return `<text ${attrs} fill="${xmlSafe(fill)}">${xmlSafe(text)}</text>`;
}

/** The opening `<svg>` tag of a w x h figure and its background. */
export function svgStart(w: number, h: number, t: Theme, fontPx: number): string[] {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="${xmlSafe(t.font)}" font-size="${fontPx}">`,
    `<rect width="100%" height="100%" fill="${xmlSafe(t.background)}"/>`,
  ];
}

/**
 * A w x h (CSS px) figure canvas at `pixelRatio`, filled with the background, the fill
 * style left at the foreground; null where there is no canvas backend.
 */
export function canvasStart(w: number, h: number, t: Theme, pixelRatio: number): CanvasRenderingContext2D | null {
  const canvas = document.createElement("canvas");
  canvas.width = Math.ceil(w * pixelRatio);
  canvas.height = Math.ceil(h * pixelRatio);
  const ctx = canvas.getContext("2d");
  if (!ctx) return null;
  ctx.scale(pixelRatio, pixelRatio);
  ctx.fillStyle = t.background;
  ctx.fillRect(0, 0, w, h);
  ctx.fillStyle = t.foreground;
  return ctx;
}

export function figureSvg(s: FigureSpec): string {
  const L = layout(s);
  const t = s.theme;
  const out = svgStart(L.totalW, L.totalH, t, FONT_PX);
  if (s.title) out.push(svgText(`x="${L.left}" y="${TITLE_PX + 2}" font-size="${TITLE_PX}"`, t.foreground, s.title));
  s.colLabels.forEach((label, c) => {
    const x = L.left + (c + 0.5) * s.cell;
    out.push(svgText(`transform="translate(${x},${L.top - 4}) rotate(-90)" ${MIDDLE}`, t.foreground, label));
  });
  s.rowLabels.forEach((label, r) => {
    const y = L.top + (r + 0.5) * s.cell;
    out.push(svgText(`x="${L.left - 4}" y="${y}" text-anchor="end" ${MIDDLE}`, t.foreground, label));
  });
  out.push(`<g shape-rendering="crispEdges">`);
  for (let r = 0; r < s.rows; r++) {
    for (let c = 0; c < s.cols; c++) {
      const v = s.values[r * s.cols + c] ?? NaN;
      out.push(`<rect x="${L.left + c * s.cell}" y="${L.top + r * s.cell}" width="${s.cell}" height="${s.cell}" fill="${s.scale.color(v)}"><title>${xmlSafe(`${s.rowLabels[r] ?? r} / ${s.colLabels[c] ?? c}: ${formatValue(v)}`)}</title></rect>`);
    }
  }
  out.push(`</g>`);
  out.push(`<defs><linearGradient id="lw-ramp" x1="0" y1="1" x2="0" y2="0">`);
  for (let i = 0; i <= 10; i++) {
    const v = s.scale.min + ((s.scale.max - s.scale.min) * i) / 10;
    out.push(`<stop offset="${i / 10}" stop-color="${s.scale.color(v)}"/>`);
  }
  out.push(`</linearGradient></defs>`);
  out.push(`<rect x="${L.legendX}" y="${L.top}" width="12" height="120" fill="url(#lw-ramp)" stroke="${xmlSafe(t.border)}"/>`);
  out.push(svgText(`x="${L.legendX + 16}" y="${L.top + 8}"`, t.foreground, formatValue(s.scale.max)));
  out.push(svgText(`x="${L.legendX + 16}" y="${L.top + 120}"`, t.foreground, formatValue(s.scale.min)));
  out.push(`</svg>`);
  return out.join("\n");
}

/** The same figure on a canvas (null where there is no canvas backend). */
export function figureCanvas(s: FigureSpec, pixelRatio = 2): HTMLCanvasElement | null {
  const L = layout(s);
  const t = s.theme;
  const ctx = canvasStart(L.totalW, L.totalH, t, pixelRatio);
  if (!ctx) return null;
  if (s.title) {
    ctx.font = `${TITLE_PX}px ${t.font}`;
    ctx.fillText(s.title, L.left, TITLE_PX + 2);
  }
  ctx.font = `${FONT_PX}px ${t.font}`;
  ctx.textBaseline = "middle";
  s.colLabels.forEach((label, c) => {
    ctx.save();
    ctx.translate(L.left + (c + 0.5) * s.cell, L.top - 4);
    ctx.rotate(-Math.PI / 2);
    ctx.fillText(label, 0, 0);
    ctx.restore();
  });
  ctx.textAlign = "right";
  s.rowLabels.forEach((label, r) => ctx.fillText(label, L.left - 4, L.top + (r + 0.5) * s.cell));
  for (let r = 0; r < s.rows; r++) {
    for (let c = 0; c < s.cols; c++) {
      ctx.fillStyle = s.scale.color(s.values[r * s.cols + c] ?? NaN);
      ctx.fillRect(L.left + c * s.cell, L.top + r * s.cell, s.cell, s.cell);
    }
  }
  for (let i = 0; i < 120; i++) {
    ctx.fillStyle = s.scale.color(s.scale.max - ((s.scale.max - s.scale.min) * i) / 119);
    ctx.fillRect(L.legendX, L.top + i, 12, 1);
  }
  ctx.textAlign = "left";
  ctx.fillStyle = t.foreground;
  ctx.fillText(formatValue(s.scale.max), L.legendX + 16, L.top + 6);
  ctx.fillText(formatValue(s.scale.min), L.legendX + 16, L.top + 116);
  return ctx.canvas;
}
