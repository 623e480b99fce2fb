/**
 * Typed, defensive reads of the feature dashboard's traits (lenswidget/widgets/feature/).
 * Anything malformed becomes an empty value; tensors go through the shared codec.
 */
import { decodeOrEmpty } from "../shared/tensor";
import { getInts, getString } from "../shared/traits";
import type { WidgetModel } from "../shared/types";

export type Status = "pending" | "running" | "done" | "error";

export interface Summary {
  fired: number;
  total: number;
  frequency: number;
  mean: number;
  max: number;
}

export interface Histogram {
  counts: Float32Array;
  /** counts.length + 1 log-spaced edges. */
  edges: Float32Array;
}

export interface Context {
  value: number;
  doc: number;
  start: number;
  tokens: string[];
  acts: Float32Array;
  top: number;
  clippedLeft: boolean;
  clippedRight: boolean;
}

export interface Effects {
  promoted: string[];
  promotedValues: Float32Array;
  suppressed: string[];
  suppressedValues: Float32Array;
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj | null => (v && typeof v === "object" && !Array.isArray(v) ? (v as Obj) : null);
const num = (v: unknown, fallback = NaN): number => (typeof v === "number" ? v : fallback);
const int = (v: unknown, fallback = 0): number => (Number.isInteger(v) ? (v as number) : fallback);
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.map((x) => (typeof x === "string" ? x : String(x))) : []);

export function readStatus(model: WidgetModel): Status {
  const s = getString(model, "status", "pending");
  return s === "running" || s === "done" || s === "error" ? s : "pending";
}

export function readProgress(model: WidgetModel): [number, number] {
  const [done = 0, total = 0] = getInts(model, "progress");
  return [done, total];
}

export function readSummary(model: WidgetModel): Summary | null {
  const s = obj(model.get("summary"));
  if (!s || typeof s.total !== "number") return null;
  return { fired: int(s.fired), total: int(s.total), frequency: num(s.frequency, 0), mean: num(s.mean, 0), max: num(s.max, 0) };
}

/** Throws on a malformed tensor (the view reports it in the banner). */
export function readHistogram(model: WidgetModel): Histogram | null {
  const h = obj(model.get("histogram"));
  if (!h) return null;
  const counts = decodeOrEmpty(h.counts).data;
  const edges = decodeOrEmpty(h.edges).data;
  if (!counts.length || edges.length !== counts.length + 1) return null;
  return { counts, edges };
}

export function readContexts(model: WidgetModel): Context[] {
  const v = model.get("contexts");
  if (!Array.isArray(v)) return [];
  const out: Context[] = [];
  for (const item of v) {
    const c = obj(item);
    if (!c) continue;
    const tokens = strings(c.tokens);
    const acts = decodeOrEmpty(c.acts).data;
    if (acts.length !== tokens.length) continue;
    out.push({
      value: num(c.value),
      doc: int(c.doc),
      start: int(c.start),
      tokens,
      acts,
      top: int(c.top, -1),
      clippedLeft: c.clipped_left === true,
      clippedRight: c.clipped_right === true,
    });
  }
  return out;
}

export function readEffects(model: WidgetModel): Effects | null {
  const e = obj(model.get("effects"));
  if (!e) return null;
  const promoted = strings(e.promoted);
  const suppressed = strings(e.suppressed);
  return {
    promoted,
    promotedValues: decodeOrEmpty(e.promoted_values).data,
    suppressed,
    suppressedValues: decodeOrEmpty(e.suppressed_values).data,
  };
}
