/** Typed reads of the patcher's traits (untrusted: anything malformed becomes a safe default). */
import { getInts, getNumber, getString } from "../shared/traits";
import type { WidgetModel } from "../shared/types";
import type { Rect } from "./rect";

export const HEAD_ACTS = ["z", "q", "k", "v", "pattern"];
export const KV_ACTS = ["k", "v"];

export interface Dims {
  nLayers: number;
  nPos: number;
  nHeads: number;
  nKvHeads: number;
  batch: number;
}

export interface Chip {
  id: number;
  act: string;
  layers: number[];
  positions: number[] | null;
  heads: number[] | null;
  mode: string;
  enabled: boolean;
  label: string;
}

export interface TopToken {
  token: string;
  id: number;
  prob: number;
  logit: number;
}

export interface SweepMeta {
  act: string;
  position: number | null;
  kind: string;
  complete: boolean;
}

const int = (v: unknown, fallback = 0): number => (Number.isInteger(v) ? (v as number) : fallback);
const ints = (v: unknown): number[] | null => (Array.isArray(v) ? v.filter((x): x is number => Number.isInteger(x)) : null);
const obj = (v: unknown): Record<string, unknown> => (v && typeof v === "object" ? (v as Record<string, unknown>) : {});

export function isHeadAct(act: string): boolean {
  return HEAD_ACTS.includes(act);
}

export function readDims(model: WidgetModel): Dims {
  const d = obj(model.get("dims"));
  return { nLayers: int(d.n_layers), nPos: int(d.n_pos), nHeads: int(d.n_heads), nKvHeads: int(d.n_kv_heads), batch: int(d.batch, 1) };
}

/** Columns of an activation's grid: positions, heads, or key/value heads. */
export function gridCols(act: string, d: Dims): number {
  if (!isHeadAct(act)) return d.nPos;
  return KV_ACTS.includes(act) ? d.nKvHeads : d.nHeads;
}

export function readPatches(model: WidgetModel): Chip[] {
  const v = model.get("patches");
  if (!Array.isArray(v)) return [];
  return v
    .map(obj)
    .filter((p) => Number.isInteger(p.id))
    .map((p) => ({
      id: p.id as number,
      act: typeof p.act === "string" ? p.act : "",
      layers: ints(p.layers) ?? [],
      positions: ints(p.positions),
      heads: ints(p.heads),
      mode: typeof p.mode === "string" ? p.mode : "clean",
      enabled: p.enabled !== false,
      label: typeof p.label === "string" ? p.label : `patch ${String(p.id)}`,
    }));
}

export function readTop(model: WidgetModel, key: string): TopToken[] {
  const v = model.get(key);
  if (!Array.isArray(v)) return [];
  return v.map(obj).map((t) => ({
    token: typeof t.token === "string" ? t.token : String(t.token ?? ""),
    id: int(t.id, -1),
    prob: typeof t.prob === "number" ? t.prob : NaN,
    logit: typeof t.logit === "number" ? t.logit : NaN,
  }));
}

export function readSweepMeta(model: WidgetModel): SweepMeta {
  const s = obj(model.get("sweep"));
  return {
    act: typeof s.act === "string" ? s.act : "",
    position: Number.isInteger(s.position) ? (s.position as number) : null,
    kind: typeof s.kind === "string" ? s.kind : "",
    complete: s.complete === true,
  };
}

export function headPosition(model: WidgetModel): number | null {
  const v = model.get("head_position");
  return Number.isInteger(v) ? (v as number) : null;
}

export function progress(model: WidgetModel): [number, number] {
  const [done = 0, total = 0] = getInts(model, "sweep_progress");
  return [done, total];
}

export function metric(model: WidgetModel, key: string): number | null {
  return getNumber(model, key);
}

export function act(model: WidgetModel): string {
  return getString(model, "act", "resid_pre");
}

/**
 * The `add_patch` message for a rectangle of the grid of `act`: rows are layers; columns
 * are positions, or heads (then at `position`, or every position when null).
 */
export function patchMessage(actName: string, rect: Rect, position: number | null, mode: string): Record<string, unknown> {
  const head = isHeadAct(actName);
  const cols = [rect.c0, rect.c1];
  return {
    type: "add_patch",
    act: actName,
    layers: [rect.r0, rect.r1],
    positions: head ? (position === null ? null : [position, position]) : cols,
    heads: head ? cols : null,
    mode,
  };
}

/** Cells (row, col) of a chip on the grid of its activation. */
export function chipCells(chip: Chip, d: Dims): Array<[number, number]> {
  const cols = isHeadAct(chip.act) ? chip.heads ?? [] : chip.positions ?? Array.from({ length: d.nPos }, (_, i) => i);
  const out: Array<[number, number]> = [];
  for (const r of chip.layers) for (const c of cols) out.push([r, c]);
  return out;
}
