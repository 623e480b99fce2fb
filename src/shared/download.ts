/** File downloads from the browser: PNG (canvas) and SVG (string). */
import { figureCanvas, figureSvg, type FigureSpec } from "./figure";

/** Click a temporary `a[download]` pointing at `url`. */
export function downloadUrl(url: string, filename: string): void {
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  a.style.display = "none";
  document.body.append(a);
  a.click();
  a.remove();
}

export function downloadBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  downloadUrl(url, filename);
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** Download an SVG document given as a string; returns the string. */
export function downloadSvg(svg: string, filename: string): string {
  downloadBlob(new Blob([svg], { type: "image/svg+xml" }), filename);
  return svg;
}

/** PNG of a canvas; falls back to a data URL where `toBlob` is missing. False when there is no canvas. */
export function downloadCanvasPng(canvas: HTMLCanvasElement | null, filename: string): boolean {
  if (!canvas) return false;
  if (typeof canvas.toBlob === "function") {
    canvas.toBlob((blob) => (blob ? downloadBlob(blob, filename) : downloadUrl(canvas.toDataURL("image/png"), filename)), "image/png");
  } else {
    downloadUrl(canvas.toDataURL("image/png"), filename);
  }
  return true;
}

export function exportSvg(spec: FigureSpec, filename: string): string {
  return downloadSvg(figureSvg(spec), filename);
}

/** PNG of the figure; falls back to a data URL where `toBlob` is missing. */
export function exportPng(spec: FigureSpec, filename: string): boolean {
  return downloadCanvasPng(figureCanvas(spec), filename);
}
