/**
 * Colours of byte-coded patterns: a 256-entry packed-RGBA table per (range, gamma), and the
 * view options of attention patterns - per-head normalisation, a hidden sink (position 0)
 * and a gamma - which only change the table, never the codes.
 */
import { NAN_PACKED, sequentialScale, type ColorScale } from "./colors";
import type { Codes } from "./codes";

export interface ViewOptions {
  /** "head": each head spans [0, its own maximum]; "global": the payload's range (0..1). */
  normalize: "global" | "head";
  /** Blank position 0 (BOS / attention sink) and leave it out of the head's maximum. */
  hideSink: boolean;
  /** Exponent on the 0..1 colour position (< 1 lifts small values). */
  gamma: number;
}

export const DEFAULT_OPTIONS: ViewOptions = { normalize: "global", hideSink: false, gamma: 1 };

/** Largest code of a `side x side` block at `offset` (column 0 skipped when `skipFirstCol`); -1 if none. */
export function maxCode(codes: Uint8Array, offset: number, side: number, skipFirstCol: boolean): number {
  let best = -1;
  const c0 = skipFirstCol ? 1 : 0;
  for (let r = 0; r < side; r++) {
    const row = offset + r * side;
    for (let c = c0; c < side; c++) {
      const v = codes[row + c]!;
      if (v > best) {
        best = v;
        if (best === 255) return 255;
      }
    }
  }
  return best;
}

/** The scale a head is drawn with, given its largest code (see {@link maxCode}). */
export function headScale(t: Codes, opts: ViewOptions, headMax: number): ColorScale {
  const lo = t.lo;
  const hi = opts.normalize === "head" && headMax > 0 ? t.lo + t.step * headMax : t.lo + t.step * 255;
  return sequentialScale(undefined, lo, hi, undefined, opts.gamma);
}

const tables = new Map<string, Uint32Array>();

/** `table[code]` = packed colour of the value `lo + step * code` under `scale` (cached). */
export function codeTable(scale: ColorScale, lo: number, step: number): Uint32Array {
  const key = `${scale.kind}|${scale.min}|${scale.max}|${scale.gamma}|${lo}|${step}`;
  let table = tables.get(key);
  if (!table) {
    table = new Uint32Array(256);
    for (let code = 0; code < 256; code++) {
      const i = scale.index(lo + step * code);
      table[code] = i < 0 ? NAN_PACKED : scale.packed[i]!;
    }
    if (tables.size >= 512) tables.clear(); // at most 256 head maxima x a few option sets in use
    tables.set(key, table);
  }
  return table;
}

/** Bytes held by the cached colour tables (for memory accounting). */
export function tableBytes(): number {
  return tables.size * 256 * 4;
}
