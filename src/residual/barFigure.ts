/**
 * Static bar-chart figure for export (SVG string with escaped text, or a canvas for PNG),
 * in the style of the shared heatmap figures.
 */
import type { ColorScale } from "../shared/colors";
import { downloadCanvasPng, downloadSvg } from "../shared/download";
import { canvasStart, MIDDLE, svgStart, svgText, xmlSafe as safe } from "../shared/figure";
import { formatValue } from "../shared/format";
import type { Theme } from "../shared/theme";

export interface BarFigure {
  title: string;
  labels: string[];
  values: number[];
  scale: ColorScale;
  theme: Theme;
  footer: string;
}

const ROW = 16;
const LABEL_W = 130;
const BAR_W = 260;
const VALUE_W = 70;
const TOP = 28;

function size(f: BarFigure): { w: number; h: number } {
  return { w: LABEL_W + BAR_W + VALUE_W + 16, h: TOP + f.labels.length * ROW + 28 };
}

function geometry(f: BarFigure, i: number): { x: number; w: number; y: number } {
  const v = f.values[i] ?? 0;
  const bound = Math.max(f.scale.max, 1e-12);
  const half = BAR_W / 2;
  const w = Number.isFinite(v) ? (Math.min(1, Math.abs(v) / bound) * half) : 0;
  const x = LABEL_W + half - (v < 0 ? w : 0);
  return { x, w, y: TOP + i * ROW };
}

export function barsSvg(f: BarFigure): string {
  const { w, h } = size(f);
  const t = f.theme;
  const out = svgStart(w, h, t, 11);
  out.push(
    svgText(`x="8" y="16" font-size="13"`, t.foreground, f.title),
    `<line x1="${LABEL_W + BAR_W / 2}" y1="${TOP}" x2="${LABEL_W + BAR_W / 2}" y2="${TOP + f.labels.length * ROW}" stroke="${safe(t.border)}"/>`,
  );
  f.labels.forEach((label, i) => {
    const g = geometry(f, i);
    const v = f.values[i] ?? NaN;
    const y = `y="${g.y + ROW / 2}"`;
    out.push(
      svgText(`x="${LABEL_W - 6}" ${y} text-anchor="end" ${MIDDLE}`, t.foreground, label),
      `<rect x="${g.x}" y="${g.y + 2}" width="${g.w}" height="${ROW - 4}" fill="${f.scale.color(v)}"><title>${safe(`${label}: ${formatValue(v)}`)}</title></rect>`,
      svgText(`x="${LABEL_W + BAR_W + 6}" ${y} ${MIDDLE}`, t.foreground, formatValue(v)),
    );
  });
  out.push(svgText(`x="8" y="${h - 10}"`, t.muted, f.footer));
  out.push("</svg>");
  return out.join("\n");
}

export function barsCanvas(f: BarFigure, pixelRatio = 2): HTMLCanvasElement | null {
  const { w, h } = size(f);
  const t = f.theme;
  const ctx = canvasStart(w, h, t, pixelRatio);
  if (!ctx) return null;
  ctx.font = `13px ${t.font}`;
  ctx.fillText(f.title, 8, 16);
  ctx.font = `11px ${t.font}`;
  ctx.textBaseline = "middle";
  ctx.fillStyle = t.border;
  ctx.fillRect(LABEL_W + BAR_W / 2, TOP, 1, f.labels.length * ROW);
  f.labels.forEach((label, i) => {
    const g = geometry(f, i);
    const v = f.values[i] ?? NaN;
    ctx.fillStyle = t.foreground;
    ctx.textAlign = "right";
    ctx.fillText(label, LABEL_W - 6, g.y + ROW / 2);
    ctx.fillStyle = f.scale.color(v);
    ctx.fillRect(g.x, g.y + 2, g.w, ROW - 4);
    ctx.fillStyle = t.foreground;
    ctx.textAlign = "left";
    ctx.fillText(formatValue(v), LABEL_W + BAR_W + 6, g.y + ROW / 2);
  });
  ctx.fillStyle = t.muted;
  ctx.fillText(f.footer, 8, h - 10);
  return ctx.canvas;
}

export function exportBarsSvg(f: BarFigure, filename: string): string {
  return downloadSvg(barsSvg(f), filename);
}

export function exportBarsPng(f: BarFigure, filename: string): boolean {
  return downloadCanvasPng(barsCanvas(f), filename);
}
