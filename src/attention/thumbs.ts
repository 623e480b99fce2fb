/** The grid of head thumbnails: one row per shown layer, one canvas per shown head. */
import type { ColorScale } from "../shared/colors";
import { el } from "../shared/dom";
import { rasterize } from "../shared/grid";
import { slice0, type Tensor } from "../shared/tensor";
import type { HeadRef } from "./display";

export class ThumbGrid {
  readonly node: HTMLDivElement;
  private canvases: HTMLCanvasElement[][] = [];
  private rowsEls: HTMLDivElement[] = [];

  constructor() {
    this.node = el("div", { testid: "lw-thumb-grid", className: "lw-thumb-grid" });
  }

  /** Rebuild all thumbnails. `names[li * heads + hi]` titles each one. */
  render(layers: number[], heads: number[], names: string[], thumbs: Tensor, scale: ColorScale): void {
    const ok = thumbs.shape.length === 4 && thumbs.shape[0] === layers.length && thumbs.shape[1] === heads.length;
    const t = ok ? thumbs.shape[2]! : 0;
    this.canvases = [];
    this.rowsEls = layers.map((layer, li) => {
      const row: HTMLCanvasElement[] = heads.map((head, hi) => {
        const name = names[li * heads.length + hi] ?? `L${layer}H${head}`;
        const c = el("canvas", {
          testid: "lw-thumb",
          className: "lw-thumb",
          attrs: { "data-layer": String(layer), "data-head": String(head), "data-locked": "false", "data-preview": "false", title: name, "data-li": String(li), "data-hi": String(hi) },
        });
        if (ok && t > 0) drawThumb(c, slice0(slice0(thumbs, li), hi).data, t, scale);
        return c;
      });
      this.canvases.push(row);
      return el("div", {
        testid: "lw-thumb-row",
        className: "lw-thumb-row",
        attrs: { "data-layer": String(layer), "data-selected": "false" },
        children: [el("span", { className: "lw-thumb-row-label", testid: "lw-thumb-row-label", text: `L${layer}` }), ...row],
      });
    });
    this.node.replaceChildren(...this.rowsEls);
  }

  /** Reflect the selected layer, locked head and hovered thumbnail as data attributes. */
  mark(selectedLayerIdx: number, locked: HeadRef | null, preview: HeadRef | null): void {
    this.rowsEls.forEach((row, li) => (row.dataset.selected = li === selectedLayerIdx ? "true" : "false"));
    this.canvases.forEach((row, li) =>
      row.forEach((c, hi) => {
        c.dataset.locked = locked && locked.layerIdx === li && locked.headIdx === hi ? "true" : "false";
        c.dataset.preview = preview && preview.layerIdx === li && preview.headIdx === hi ? "true" : "false";
      }),
    );
  }

  scrollToLayer(li: number): void {
    const row = this.rowsEls[li];
    if (row && typeof row.scrollIntoView === "function") row.scrollIntoView({ block: "nearest" });
  }
}

/** The thumbnail (layer, head indices) under an event target, or null. */
export function thumbRef(target: EventTarget | null): HeadRef | null {
  if (!(target instanceof HTMLElement) || target.dataset.testid !== "lw-thumb") return null;
  const li = Number(target.dataset.li);
  const hi = Number(target.dataset.hi);
  return Number.isInteger(li) && Number.isInteger(hi) ? { layerIdx: li, headIdx: hi } : null;
}

function drawThumb(canvas: HTMLCanvasElement, data: Float32Array, t: number, scale: ColorScale): void {
  canvas.width = t;
  canvas.height = t;
  const ctx = canvas.getContext("2d");
  if (!ctx) return;
  const img = ctx.createImageData(t, t);
  img.data.set(rasterize(data, t, t, scale));
  ctx.putImageData(img, 0, 0);
}
