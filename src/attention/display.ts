/**
 * What the big canvas shows, as a pure function of the widget state: the hovered
 * thumbnail (preview), else the locked head, else the first head of the selected layer.
 * Full-resolution data exists only for the layer whose `pattern` the kernel last sent;
 * anything else is drawn from its (max-pooled) thumbnail.
 */
import type { Display } from "../shared/patternView";
import { slice0, type Tensor } from "../shared/tensor";

export interface HeadRef {
  /** Index into `layers` / `heads` (not the model's layer/head numbers). */
  layerIdx: number;
  headIdx: number;
}

export interface AttnState {
  layers: number[];
  heads: number[];
  headNames: string[];
  layer: number | null;
  head: number | null;
  tokens: string[];
  thumbs: Tensor; // [L, H, t, t]
  pattern: Tensor; // [H, n, n] for `patternLayer`
  patternLayer: number | null;
  preview: HeadRef | null;
}

export type { Display };

export function headName(s: AttnState, ref: HeadRef): string {
  const name = s.headNames[ref.layerIdx * s.heads.length + ref.headIdx];
  return name ?? `L${s.layers[ref.layerIdx]}H${s.heads[ref.headIdx]}`;
}

/** The head to draw, or null when there is nothing to draw yet. */
export function chooseDisplay(s: AttnState): Display | null {
  let ref: HeadRef | null = s.preview;
  let mode: Display["mode"] = "preview";
  const layerIdx = s.layer === null ? 0 : Math.max(0, s.layers.indexOf(s.layer));
  if (!ref) {
    const locked = s.head === null ? -1 : s.heads.indexOf(s.head);
    ref = { layerIdx, headIdx: Math.max(0, locked) };
    mode = locked >= 0 ? "locked" : "default";
  }
  if (ref.layerIdx >= s.layers.length || ref.headIdx >= s.heads.length) return null;
  const layer = s.layers[ref.layerIdx]!;
  const head = s.heads[ref.headIdx]!;
  const n = s.tokens.length;
  const full = s.pattern.shape;
  const name = headName(s, ref);
  if (layer === s.patternLayer && full.length === 3 && full[0] === s.heads.length && full[1] === n && full[2] === n) {
    return { layer, head, name, mode, resolution: "full", size: n, data: slice0(s.pattern, ref.headIdx).data };
  }
  const th = s.thumbs.shape;
  if (th.length === 4 && th[0] === s.layers.length && th[1] === s.heads.length && th[2] === th[3]) {
    const data = slice0(slice0(s.thumbs, ref.layerIdx), ref.headIdx).data;
    return { layer, head, name, mode, resolution: th[2] === n ? "full" : "thumbnail", size: th[2]!, data };
  }
  return null;
}

