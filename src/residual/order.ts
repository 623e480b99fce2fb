/**
 * Bar display order, identical to `order` in lenswidget/widgets/residual/encode.py: by
 * |value| (`abs`, the default) or by value, descending, or as given (`layer`); bias /
 * remainder bars always stay last.
 */
export type Sort = "abs" | "value" | "layer";

export const SORTS: readonly Sort[] = ["abs", "value", "layer"];

export function readSort(v: unknown): Sort {
  return SORTS.includes(v as Sort) ? (v as Sort) : "abs";
}

function magnitude(v: number | undefined): number {
  return v === undefined || Number.isNaN(v) ? -1 : Math.abs(v);
}

const PINNED = new Set(["bias", "remainder"]);

export function barOrder(values: ArrayLike<number>, kinds: readonly string[], sort: Sort): number[] {
  const idx = Array.from({ length: values.length }, (_, i) => i);
  if (sort === "layer") return idx;
  const free = idx.filter((i) => !PINNED.has(kinds[i] ?? ""));
  const pinned = idx.filter((i) => PINNED.has(kinds[i] ?? ""));
  if (sort === "abs") free.sort((a, b) => magnitude(values[b]) - magnitude(values[a]) || a - b);
  else free.sort((a, b) => (values[b] ?? 0) - (values[a] ?? 0) || a - b);
  return [...free, ...pinned];
}

/** What a click on a bar of `kind` does: open it (drill down / show detail) or nothing. */
export function isOpenable(kind: string): boolean {
  return kind === "attn" || kind === "mlp" || kind === "head" || kind === "neuron";
}
