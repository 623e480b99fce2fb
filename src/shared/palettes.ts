/**
 * The two colour ramps every widget uses, as 256-entry tables computed once from a few
 * control colours (no colour-scheme library in the bundles):
 *
 * - `sequential`: ColorBrewer "Blues" (white -> dark blue), for probabilities and other
 *   values >= 0 (attention patterns, the logit lens);
 * - `diverging`: ColorBrewer "RdBu" (red < 0, white at 0, blue > 0), for attributions.
 *
 * The ramps are the same in light and dark themes: a value keeps its colour when the
 * theme changes (only the chrome around the cells follows the theme). Each ramp is its own
 * export, so a bundle carries only the ramps its widget uses.
 *
 * Control colours: ColorBrewer (Cynthia A. Brewer, colorbrewer2.org, Apache-2.0).
 * Between them each channel follows a uniform cubic B-spline, so the ramp is smooth
 * (tests/js/colors.test.ts checks it against d3-scale-chromatic's tables).
 */
/** Control colours of a ramp and the stretch of them that its 256 entries sample. */
export interface Ramp {
  controls: readonly string[];
  range: readonly [number, number];
}

/** ColorBrewer "Blues"; the lightest Blue is nearly white, so the table starts a bit in. */
export const SEQUENTIAL: Ramp = { controls: ["f7fbff", "deebf7", "c6dbef", "9ecae1", "6baed6", "4292c6", "2171b5", "08519c", "08306b"], range: [0.02, 1] };
/** ColorBrewer "RdBu": red < 0, white at 0, blue > 0. */
export const DIVERGING: Ramp = {
  controls: ["67001f", "b2182b", "d6604d", "f4a582", "fddbc7", "f7f7f7", "d1e5f0", "92c5de", "4393c3", "2166ac", "053061"],
  range: [0, 1],
};

function hexChannels(hex: string): [number, number, number] {
  return [0, 2, 4].map((i) => parseInt(hex.slice(i, i + 2), 16)) as [number, number, number];
}

/**
 * Value at `t` in [0, 1] of the uniform cubic B-spline whose control values are `v`
 * (the curve's ends are pinned by mirroring the neighbouring control value).
 */
export function bspline(v: readonly number[], t: number): number {
  const segments = v.length - 1;
  const x = Math.min(1, Math.max(0, t)) * segments;
  const i = Math.min(segments - 1, Math.floor(x));
  const u = x - i;
  const p1 = v[i]!;
  const p2 = v[i + 1]!;
  const p0 = i > 0 ? v[i - 1]! : 2 * p1 - p2;
  const p3 = i + 2 <= segments ? v[i + 2]! : 2 * p2 - p1;
  // Basis weights of the four control values at parameter u in [0, 1).
  const u2 = u * u;
  const u3 = u2 * u;
  const w0 = (1 - u) ** 3;
  const w1 = 3 * u3 - 6 * u2 + 4;
  const w2 = -3 * u3 + 3 * u2 + 3 * u + 1;
  const w3 = u3;
  return (w0 * p0 + w1 * p1 + w2 * p2 + w3 * p3) / 6;
}

const cache = new Map<Ramp, Uint8ClampedArray>();

/** RGBA bytes (256 x 4, alpha 255) of a ramp; entry i is the colour at i / 255 of its range. */
export function rampTable(ramp: Ramp): Uint8ClampedArray {
  let table = cache.get(ramp);
  if (table) return table;
  const channels = ramp.controls.map(hexChannels);
  const [lo, hi] = ramp.range;
  table = new Uint8ClampedArray(256 * 4);
  for (let i = 0; i < 256; i++) {
    const t = lo + ((hi - lo) * i) / 255;
    for (let c = 0; c < 3; c++) table[4 * i + c] = Math.round(bspline(channels.map((rgb) => rgb[c]!), t));
    table[4 * i + 3] = 255;
  }
  cache.set(ramp, table);
  return table;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** RGBA packed into one 32-bit word as an `ImageData` buffer viewed as `Uint32Array` stores it. */
export function packRgba(r: number, g: number, b: number, a: number): number {
  return LITTLE_ENDIAN ? ((a << 24) | (b << 16) | (g << 8) | r) >>> 0 : ((r << 24) | (g << 16) | (b << 8) | a) >>> 0;
}
