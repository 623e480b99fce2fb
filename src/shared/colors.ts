/**
 * Colour scales (d3-scale-chromatic / d3-interpolate): diverging centred at 0 for
 * attributions, sequential for attention patterns. Each scale also has a 256-entry RGBA
 * lookup table for fast canvas drawing.
 */
import { interpolateLab, piecewise } from "d3-interpolate";
import { interpolateBlues, interpolateInferno, interpolateRdBu } from "d3-scale-chromatic";
import { parseColor } from "./theme";

export type ScaleKind = "diverging" | "sequential";

export interface ColorScale {
  kind: ScaleKind;
  min: number;
  max: number;
  /** CSS colour of a value (NaN -> the `nan` colour). */
  color(value: number): string;
  /** RGBA of a value, from the lookup table. */
  rgba(value: number): [number, number, number, number];
  /** Position 0..1 of `value` on the ramp, clamped. */
  position(value: number): number;
}

const NAN_RGBA: [number, number, number, number] = [128, 128, 128, 60];

function toRgba(css: string): [number, number, number, number] {
  const rgb = parseColor(css) ?? [128, 128, 128];
  return [rgb[0], rgb[1], rgb[2], 255];
}

/** The ramp (t in 0..1 -> CSS colour) of a scale in a theme. */
export function ramp(kind: ScaleKind, dark: boolean, background = dark ? "#111111" : "#ffffff"): (t: number) => string {
  if (kind === "sequential") return dark ? (t) => interpolateInferno(0.05 + 0.95 * t) : (t) => interpolateBlues(0.02 + 0.98 * t);
  // RdBu: negative red, positive blue (as in the seed notebook's plots). In dark themes the
  // midpoint is the background rather than white, so zeros recede.
  if (!dark) return (t) => interpolateRdBu(t);
  const mid = parseColor(background) ? background : "#111111";
  return piecewise(interpolateLab, [interpolateRdBu(0.02), mid, interpolateRdBu(0.98)]);
}

export function makeScale(kind: ScaleKind, min: number, max: number, dark: boolean, background?: string): ColorScale {
  if (!(max > min)) max = min + 1;
  const r = ramp(kind, dark, background);
  const lut: Array<[number, number, number, number]> = [];
  for (let i = 0; i < 256; i++) lut.push(toRgba(r(i / 255)));
  const position = (v: number): number => {
    const t = (v - min) / (max - min);
    return t < 0 ? 0 : t > 1 ? 1 : t;
  };
  const rgba = (v: number): [number, number, number, number] =>
    Number.isFinite(v) ? lut[Math.round(position(v) * 255)]! : NAN_RGBA;
  return {
    kind,
    min,
    max,
    position,
    rgba,
    color: (v) => {
      const [cr, cg, cb, ca] = rgba(v);
      return ca === 255 ? `rgb(${cr}, ${cg}, ${cb})` : `rgba(${cr}, ${cg}, ${cb}, ${(ca / 255).toFixed(2)})`;
    },
  };
}

/** Diverging scale symmetric around 0: `[-bound, bound]`. */
export function divergingScale(bound: number, dark: boolean, background?: string): ColorScale {
  const b = Number.isFinite(bound) && bound > 0 ? bound : 1;
  return makeScale("diverging", -b, b, dark, background);
}

/** Sequential scale for patterns, `[min, max]` (default 0..1). */
export function sequentialScale(dark: boolean, min = 0, max = 1, background?: string): ColorScale {
  return makeScale("sequential", min, max, dark, background);
}

/** Black or white text, whichever reads better on `rgba`. */
export function textOn(rgba: [number, number, number, number]): string {
  const [r, g, b] = rgba;
  return 0.299 * r + 0.587 * g + 0.114 * b > 150 ? "#000000" : "#ffffff";
}
