/**
 * Colour scales: diverging centred at 0 for attributions, sequential for attention
 * patterns and probabilities. Both ramps come from `palettes.ts` (precomputed tables) and
 * are the same in every theme, so a value keeps its colour when JupyterLab switches
 * between light and dark.
 *
 * A scale maps a value to one of 256 table entries (`index`), optionally through a gamma
 * (`t ** gamma` on the 0..1 position: gamma < 1 lifts small values, e.g. attention that
 * is not on the sink), and to the entry's colour (`rgba`, `color`, `packed`).
 */
import { DIVERGING, packRgba, rampTable, SEQUENTIAL, type Ramp } from "./palettes";

export type ScaleKind = "diverging" | "sequential";

export interface ColorScale {
  kind: ScaleKind;
  min: number;
  max: number;
  /** Exponent applied to the 0..1 position (1 = linear). */
  gamma: number;
  /** CSS colour of a value (NaN -> the translucent `nan` colour). */
  color(value: number): string;
  /** RGBA of a value, from the table. */
  rgba(value: number): [number, number, number, number];
  /** Position 0..1 of `value` on the ramp (clamped, gamma applied). */
  position(value: number): number;
  /** Table entry 0..255 of a value; -1 for NaN / infinities. */
  index(value: number): number;
  /** The 256 entries as packed RGBA words (see `packRgba`), for `ImageData` writes. */
  packed: Uint32Array;
}

export const NAN_RGBA: [number, number, number, number] = [128, 128, 128, 60];
export const NAN_PACKED = packRgba(...NAN_RGBA);

const packedCache = new Map<Ramp, Uint32Array>();

function packedTable(ramp: Ramp): Uint32Array {
  let packed = packedCache.get(ramp);
  if (!packed) {
    const t = rampTable(ramp);
    packed = new Uint32Array(256);
    for (let i = 0; i < 256; i++) packed[i] = packRgba(t[4 * i]!, t[4 * i + 1]!, t[4 * i + 2]!, 255);
    packedCache.set(ramp, packed);
  }
  return packed;
}

/** A scale over `[min, max]` on `ramp` (the colours of `kind`). */
function scaleOn(ramp: Ramp, kind: ScaleKind, min: number, max: number, gamma = 1): ColorScale {
  if (!(max > min)) max = min + 1;
  const g = Number.isFinite(gamma) && gamma > 0 ? gamma : 1;
  const table = rampTable(ramp);
  const packed = packedTable(ramp);
  const position = (v: number): number => {
    let t = (v - min) / (max - min);
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    if (g === 1 || Number.isNaN(t)) return t;
    if (kind === "sequential") return t ** g;
    const d = 2 * t - 1; // diverging: bend symmetrically around the centre
    return 0.5 + 0.5 * Math.sign(d) * Math.abs(d) ** g;
  };
  const index = (v: number): number => (Number.isFinite(v) ? Math.round(position(v) * 255) : -1);
  const rgba = (v: number): [number, number, number, number] => {
    const i = index(v);
    return i < 0 ? NAN_RGBA : [table[4 * i]!, table[4 * i + 1]!, table[4 * i + 2]!, 255];
  };
  return {
    kind,
    min,
    max,
    gamma: g,
    position,
    index,
    rgba,
    packed,
    color: (v) => {
      const [cr, cg, cb, ca] = rgba(v);
      return ca === 255 ? `rgb(${cr}, ${cg}, ${cb})` : `rgba(${cr}, ${cg}, ${cb}, ${(ca / 255).toFixed(2)})`;
    },
  };
}

/**
 * A scale of `kind` over `[min, max]`. The theme arguments of earlier versions (`_dark`,
 * `_background`) are accepted and ignored: colours do not depend on the theme.
 */
export function makeScale(kind: ScaleKind, min: number, max: number, _dark?: boolean, _background?: string, gamma = 1): ColorScale {
  return scaleOn(kind === "sequential" ? SEQUENTIAL : DIVERGING, kind, min, max, gamma);
}

/** Diverging scale symmetric around 0: `[-bound, bound]`. */
export function divergingScale(bound: number, _dark?: boolean, _background?: string): ColorScale {
  const b = Number.isFinite(bound) && bound > 0 ? bound : 1;
  return scaleOn(DIVERGING, "diverging", -b, b);
}

/** Sequential scale, `[min, max]` (default 0..1). */
export function sequentialScale(_dark?: boolean, min = 0, max = 1, _background?: string, gamma = 1): ColorScale {
  return scaleOn(SEQUENTIAL, "sequential", min, max, gamma);
}

/** The attention-pattern scale: probabilities 0..1 (theme arguments ignored, as above). */
export function patternScale(_dark?: boolean, _background?: string): ColorScale {
  return scaleOn(SEQUENTIAL, "sequential", 0, 1);
}

/** Black or white text, whichever reads better on `rgba`. */
export function textOn(rgba: [number, number, number, number]): string {
  const [r, g, b] = rgba;
  return 0.299 * r + 0.587 * g + 0.114 * b > 150 ? "#000000" : "#ffffff";
}
