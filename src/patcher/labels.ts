/** Names of grid columns and selections, e.g. `pos 4 ·cat`, `KV1`, `z L1–2 · H0 · all pos`. */
import { visibleToken } from "../shared/tokens";
import type { Rect } from "./rect";
import { isHeadAct, KV_ACTS, type Dims } from "./state";

export interface LabelContext {
  act: string;
  dims: Dims;
  tokens: string[]; // the clean run's tokens
  position: number | null; // head grids: the patched position (null: every position)
}

function headPrefix(c: LabelContext): string {
  return KV_ACTS.includes(c.act) && c.dims.nKvHeads !== c.dims.nHeads ? "KV" : "H";
}

const span = (a: number, b: number): string => (a === b ? `${a}` : `${a}–${b}`);

/** Column `col` of the grid: a position with its token, or a head. */
export function colName(c: LabelContext, col: number): string {
  if (isHeadAct(c.act)) return `${headPrefix(c)}${col}`;
  const tok = c.tokens[col];
  return `pos ${col}${tok === undefined ? "" : ` ${visibleToken(tok)}`}`;
}

/** Where head patches apply: `all pos`, `pos 3`, or `dest 3` for patterns. */
export function positionText(c: LabelContext): string {
  return c.position === null ? "all pos" : `${c.act === "pattern" ? "dest" : "pos"} ${c.position}`;
}

/** A rectangle of the grid as a chip-like label. */
export function describe(c: LabelContext, r: Rect): string {
  const cols = isHeadAct(c.act) ? `${headPrefix(c)}${span(r.c0, r.c1)} · ${positionText(c)}` : `pos ${span(r.c0, r.c1)}`;
  return `${c.act} L${span(r.r0, r.r1)} · ${cols}`;
}
