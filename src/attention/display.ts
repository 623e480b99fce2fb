/**
 * What the big canvas shows, as a pure function of the widget state: the hovered (or
 * keyboard-focused) thumbnail (preview), else the locked head, else the first head of the
 * selected layer. Full-resolution codes exist only for the layer whose `pattern` the
 * kernel last sent; anything else is drawn from its max-pooled thumbnail.
 */
import { codeTable, headScale, maxCode, type ViewOptions } from "../shared/codeColors";
import { blockOf, type Codes } from "../shared/codes";
import type { PatternImage } from "../shared/patternView";
import { binsOf } from "../shared/raster";

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
  thumbs: Codes; // [L, H, t, t]
  pattern: Codes; // [H, n, n] for `patternLayer`
  patternLayer: number | null;
  preview: HeadRef | null;
  options: ViewOptions;
}

export function headName(s: AttnState, ref: HeadRef): string {
  const name = s.headNames[ref.layerIdx * s.heads.length + ref.headIdx];
  return name ?? `L${s.layers[ref.layerIdx]}H${s.heads[ref.headIdx]}`;
}

/** The head to draw, as an image for the pattern view, or null when there is nothing yet. */
export function chooseDisplay(s: AttnState): PatternImage | null {
  let ref: HeadRef | null = s.preview;
  let mode: PatternImage["mode"] = "preview";
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
  const meta = { layer, head, name: headName(s, ref), mode, n };
  const full = s.pattern.shape;
  // The kernel sends every head of the layer, or (big layers) only some: `heads` says which.
  const sent = s.pattern.heads ?? (full[0] === s.heads.length ? s.heads.map((_, i) => i) : []);
  const at = sent.indexOf(ref.headIdx);
  if (layer === s.patternLayer && at >= 0 && full.length === 3 && full[0] === sent.length && full[1] === n && full[2] === n) {
    return image(s.pattern, blockOf(s.pattern, at).offset, n, null, "full", meta, s.options);
  }
  const th = s.thumbs.shape;
  if (th.length === 4 && th[0] === s.layers.length && th[1] === s.heads.length && th[2] === th[3] && th[2]! > 0 && th[2]! <= n) {
    const t = th[2]!;
    const bins = binsOf(s.thumbs.edges, n, t);
    return image(s.thumbs, blockOf(s.thumbs, ref.layerIdx, ref.headIdx).offset, t, bins, t === n ? "full" : "thumbnail", meta, s.options);
  }
  return null;
}

function image(
  t: Codes,
  offset: number,
  side: number,
  bins: Int32Array | null,
  resolution: PatternImage["resolution"],
  meta: Pick<PatternImage, "layer" | "head" | "name" | "mode" | "n">,
  options: ViewOptions,
): PatternImage {
  const scale = headScale(t, options, maxCode(t.codes, offset, side, options.hideSink));
  const at = (p: number) => (bins ? bins[p]! : p);
  return {
    ...meta,
    resolution,
    side,
    codes: t.codes,
    offset,
    bins,
    hideSink: options.hideSink,
    table: codeTable(scale, t.lo, t.step),
    scale,
    value: (r, c) => t.exact(offset + at(r) * side + at(c)),
  };
}
