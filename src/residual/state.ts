/**
 * Typed, defensive reads of the residual explorer's traits (lenswidget/widgets/residual.py).
 * Anything malformed becomes an empty value; tensors are decoded with the shared codec.
 */
// Tensor fields: malformed payloads throw (the view reports them in the banner).
import { decodeOrEmpty as tensor, type Tensor } from "../shared/tensor";
import { toStrings as strings } from "../shared/traits";
import type { WidgetModel } from "../shared/types";

export type Level = "components" | "heads" | "neurons";

export interface BarsData {
  level: Level;
  layer: number | null;
  labels: string[];
  kinds: string[];
  values: Float32Array;
}

export interface CheckData {
  sum: number;
  target: number;
  label: string;
  metric: string;
}

export interface DetailData {
  kind: "head" | "neuron";
  label: string;
  layer: number;
  index: number;
  prompt: number;
  value: number;
  pos: number;
  promoted: string[];
  promotedValues: Float32Array;
  suppressed: string[];
  suppressedValues: Float32Array;
  tokens: string[];
  row: Float32Array;
  pattern: Tensor;
  activation: number | null;
}

export interface LensData {
  labels: string[];
  metric: string;
  rank: Float32Array;
  prob: Float32Array;
  logit: Float32Array;
  diff: Float32Array | null;
}

export interface LensGridData {
  prompt: number;
  labels: string[];
  tokens: string[];
  vocab: string[];
  /** [n_tokens, n_layers, k] indices into `vocab`. */
  ids: Tensor;
  /** [n_tokens, n_layers, k] probabilities. */
  probs: Tensor;
}

type Obj = Record<string, unknown>;

function obj(v: unknown): Obj | null {
  return v && typeof v === "object" && !Array.isArray(v) ? (v as Obj) : null;
}

function text(v: unknown, fallback = ""): string {
  return typeof v === "string" ? v : fallback;
}

function num(v: unknown, fallback = NaN): number {
  return typeof v === "number" ? v : fallback;
}

function int(v: unknown): number | null {
  return Number.isInteger(v) ? (v as number) : null;
}

export function readPath(model: WidgetModel): string[] {
  return strings(model.get("path"));
}

export function readBars(model: WidgetModel): BarsData {
  const b = obj(model.get("bars"));
  const empty: BarsData = { level: "components", layer: null, labels: [], kinds: [], values: new Float32Array(0) };
  if (!b) return empty;
  const level = b.level === "heads" || b.level === "neurons" ? b.level : "components";
  const values = tensor(b.values).data;
  const labels = strings(b.labels);
  const kinds = strings(b.kinds);
  const n = Math.min(values.length, labels.length);
  return { level, layer: int(b.layer), labels: labels.slice(0, n), kinds: labels.slice(0, n).map((_, i) => kinds[i] ?? ""), values: values.subarray(0, n) };
}

export function readCheck(model: WidgetModel): CheckData | null {
  const c = obj(model.get("check"));
  if (!c) return null;
  return { sum: num(c.sum), target: num(c.target), label: text(c.label), metric: text(c.metric) };
}

export function readDetail(model: WidgetModel): DetailData | null {
  const d = obj(model.get("detail"));
  if (!d || (d.kind !== "head" && d.kind !== "neuron")) return null;
  const pattern = d.kind === "head" ? tensor(d.pattern) : { shape: [0], data: new Float32Array(0) };
  return {
    kind: d.kind,
    label: text(d.label),
    layer: int(d.layer) ?? 0,
    index: int(d.index) ?? 0,
    prompt: int(d.prompt) ?? 0,
    value: num(d.value),
    pos: int(d.pos) ?? 0,
    promoted: strings(d.promoted),
    promotedValues: tensor(d.promoted_values).data,
    suppressed: strings(d.suppressed),
    suppressedValues: tensor(d.suppressed_values).data,
    tokens: strings(d.tokens),
    row: d.kind === "head" ? tensor(d.row).data : new Float32Array(0),
    pattern,
    activation: d.kind === "neuron" ? num(d.activation) : null,
  };
}

export function readHeadGrid(model: WidgetModel): Tensor | null {
  const t = tensor(model.get("head_grid"));
  return t.shape.length === 2 && t.data.length > 0 ? t : null;
}

export function readLens(model: WidgetModel): LensData | null {
  const l = obj(model.get("lens"));
  if (!l) return null;
  const labels = strings(l.labels);
  if (!labels.length) return null;
  return {
    labels,
    metric: text(l.metric, "logit"),
    rank: tensor(l.rank).data,
    prob: tensor(l.prob).data,
    logit: tensor(l.logit).data,
    diff: "diff" in l ? tensor(l.diff).data : null,
  };
}

export function readLensGrid(model: WidgetModel): LensGridData | null {
  const g = obj(model.get("lens_grid"));
  if (!g) return null;
  const ids = tensor(g.ids);
  const probs = tensor(g.probs);
  if (ids.shape.length !== 3 || probs.shape.join(",") !== ids.shape.join(",")) return null;
  return { prompt: int(g.prompt) ?? 0, labels: strings(g.labels), tokens: strings(g.tokens), vocab: strings(g.vocab), ids, probs };
}
